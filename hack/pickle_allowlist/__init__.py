"""The pieces of ``hack/gen_pickle_allowlist.py``: inspect the code the unpickler can reach.

* :mod:`candidates`: the names considered, library by library;
* :mod:`observe` and :mod:`benign`: what real pickles of real objects call, build, or
  only reference;
* :mod:`purity`: a conservative AST check that a method has no effect beyond its object;
* :mod:`reviews`: the reviewed-methods file (source hashes, compiled code by name);
* :mod:`inspect_class`: method resolution through the MRO, and the class facts;
* :mod:`trampoline`: does a function take a callable.
"""
