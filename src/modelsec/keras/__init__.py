"""Keras model configs: the layer-config walker and a bounded reader for the marshal
format of Lambda bytecode. Nothing here imports Keras or executes what it reads."""
