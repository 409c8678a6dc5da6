"""Command lines as the kubelet and a shell would run them."""

from __future__ import annotations

from modelsec.references.container import Container, split_script


def test_exec_form_is_one_command_line() -> None:
    c = Container.of(command=["vllm", "serve"], args=["org/m", "--revision", "abc"])
    assert c.commands == (("vllm", "serve", "org/m", "--revision", "abc"),)
    assert not c.entrypoint


def test_args_only_go_to_the_image_entrypoint() -> None:
    c = Container.of(image="vllm/vllm-openai:v0.8", args=["org/m"])
    assert c.entrypoint and c.commands == (("org/m",),)


def test_kubelet_expands_dollar_parens_from_literal_env() -> None:
    c = Container.of(command=["vllm", "serve", "$(MODEL)", "--revision", "$(REV)", "$$(MODEL)"],
                     env={"MODEL": "org/m"})
    assert c.commands == (("vllm", "serve", "org/m", "--revision", "$(REV)", "$(MODEL)"),)


def test_shell_scripts_split_into_simple_commands() -> None:
    script = (
        "set -e\n"
        "pip install foo && \\\n"
        "  exec vllm serve $MODEL --revision \"${REV}\"  # the server\n"
        "echo done; FOO=1 env BAR=2 nohup python -m x | tee log"
    )
    c = Container.of(command=["/bin/sh", "-ec", script], env={"MODEL": "org/m", "REV": "abc"})
    assert c.commands == (
        ("set", "-e"),
        ("pip", "install", "foo"),
        ("vllm", "serve", "org/m", "--revision", "abc"),
        ("echo", "done"),
        ("python", "-m", "x"),
        ("tee", "log"),
    )


def test_shell_script_given_as_args() -> None:
    c = Container.of(command=["bash"], args=["-c", "exec llama-server -m /m/x.gguf"])
    assert c.commands == (("llama-server", "-m", "/m/x.gguf"),)


def test_unbalanced_quotes_fall_back_to_words() -> None:
    assert split_script('vllm serve "org/m', {}) == (("vllm", "serve", '"org/m'),)


def test_env_from_configmaps_is_named_not_guessed() -> None:
    c = Container({"name": "x", "env": [
        {"name": "MODEL_ID", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "model"}}},
        {"name": "REVISION", "value": "abc"},
        {"name": 3}, "junk",
    ]})
    assert dict(c.env) == {"REVISION": "abc"}
    assert c.env_from_elsewhere == frozenset({"MODEL_ID"})


def test_image_name_drops_tag_and_digest_not_the_registry_port() -> None:
    assert Container.of(image="registry:5000/org/llama.cpp:server").image_name == "registry:5000/org/llama.cpp"
    assert Container.of(image="GHCR.io/x/vllm@sha256:abc").image_name == "ghcr.io/x/vllm"


def test_python_module_programs() -> None:
    c = Container.of(command=["python3", "-u", "-m", "vllm.entrypoints.openai.api_server", "--model", "o/m"])
    assert c.programs == (("vllm.entrypoints.openai.api_server", ("--model", "o/m")),)


def test_garbage_fields_are_ignored() -> None:
    c = Container({"name": 5, "image": None, "command": "not a list", "args": [1, "x"]})
    assert c.name == "" and c.image == "" and c.commands == (("x",),)


def test_first_reads_flags_as_values_does() -> None:
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from modelsec.references.argv import first, values

    words = st.sampled_from(["-m", "--model", "--model=x", "x", "y", "-", "--", "-5", "--other", "-m=z"])

    @settings(max_examples=500, deadline=None)
    @given(st.lists(words, max_size=10).map(tuple))
    def check(args: tuple[str, ...]) -> None:
        expected = None
        for _flag, value in values(args, "-m", "--model"):
            expected = value
        assert first(args, "-m", "--model") == expected

    check()
