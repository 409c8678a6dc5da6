"""Command lines as the kubelet and a shell would run them."""

from __future__ import annotations

import pytest

from modelsec.references.container import Container
from modelsec.references.model import Malformed
from modelsec.references.shell import split_script


def test_exec_form_is_one_command_line() -> None:
    c = Container.of(command=["vllm", "serve"], args=["org/m", "--revision", "abc"])
    assert c.commands == (("vllm", "serve", "org/m", "--revision", "abc"),)
    assert not c.entrypoint


def test_args_only_go_to_the_image_entrypoint() -> None:
    c = Container.of(image="vllm/vllm-openai:v0.8", args=["org/m"])
    assert c.entrypoint and c.commands == (("org/m",),)


def test_kubelet_expands_dollar_parens_from_literal_env() -> None:
    c = Container.of(
        command=["vllm", "serve", "$(MODEL)", "--revision", "$(REV)", "$$(MODEL)"], env={"MODEL": "org/m"}
    )
    assert c.commands == (("vllm", "serve", "org/m", "--revision", "$(REV)", "$(MODEL)"),)


def test_shell_scripts_split_into_simple_commands() -> None:
    script = (
        "set -e\n"
        "pip install foo && \\\n"
        '  exec vllm serve $MODEL --revision "${REV}"  # the server\n'
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
    c = Container(
        {
            "name": "x",
            "env": [
                {"name": "MODEL_ID", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "model"}}},
                {"name": "REVISION", "value": "abc"},
            ],
        }
    )
    assert dict(c.env) == {"REVISION": "abc"}
    assert c.env_from_elsewhere == frozenset({"MODEL_ID"})
    assert c.environment.why_unknown("MODEL_ID").configmaps == ("cm",)


def test_configmap_values_read_by_the_caller_are_used_as_the_kubelet_would() -> None:
    raw = {
        "name": "x",
        "envFrom": [{"configMapRef": {"name": "all"}, "prefix": "P_"}],
        "env": [
            {"name": "MODEL_ID", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "model"}}},
            {
                "name": "OPTIONAL",
                "valueFrom": {"configMapKeyRef": {"name": "gone", "key": "k", "optional": True}},
            },
            {"name": "DERIVED", "value": "$(MODEL_ID)-x"},
        ],
    }
    c = Container(raw, configmaps={"cm": {"model": "org/m"}, "all": {"A": "1", "bad key": "2"}, "gone": None})
    assert dict(c.env) == {"P_A": "1", "MODEL_ID": "org/m", "DERIVED": "org/m-x"}
    assert c.env_from_elsewhere == frozenset()


def test_secrets_and_unread_envfrom_sources_make_values_unknown() -> None:
    c = Container(
        {
            "name": "x",
            "envFrom": [{"secretRef": {"name": "creds"}}],
            "env": [{"name": "LITERAL", "value": "v"}],
        }
    )
    assert "Secret creds" in c.environment.why_unknown("ANYTHING").why
    assert c.environment.why_unknown("LITERAL") is None  # env wins over envFrom


def test_unreadable_configmaps_say_why() -> None:
    from modelsec.references.container import Unreadable

    raw = {"name": "x", "env": [{"name": "M", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "k"}}}]}
    why = Container(raw, configmaps={"cm": Unreadable("403 Forbidden")}).environment.why_unknown("M")
    assert "could not be read (403 Forbidden)" in why.why and why.configmaps == ()


def test_image_name_drops_tag_and_digest_not_the_registry_port() -> None:
    assert (
        Container.of(image="registry:5000/org/llama.cpp:server").image_name == "registry:5000/org/llama.cpp"
    )
    assert Container.of(image="GHCR.io/x/vllm@sha256:abc").image_name == "ghcr.io/x/vllm"


def test_python_module_programs() -> None:
    c = Container.of(command=["python3", "-u", "-m", "vllm.entrypoints.openai.api_server", "--model", "o/m"])
    assert c.programs == (("vllm.entrypoints.openai.api_server", ("--model", "o/m")),)


@pytest.mark.parametrize(
    "raw, path",
    [
        ({"name": 5}, "c.name"),
        ({"command": "not a list"}, "c.command"),
        ({"args": [1, "x"]}, "c.args[0]"),
        ({"env": ["junk"]}, "c.env[0]"),
        ({"env": [{"name": "X", "value": ["list"]}]}, "c.env[0].value"),
        ({"envFrom": [{"configMapRef": {"name": 7}}]}, "c.envFrom[0].configMapRef.name"),
        ({"modelFormat": "pytorch"}, "c.modelFormat"),
    ],
)
def test_fields_of_the_wrong_type_are_malformed_not_ignored(raw: dict, path: str) -> None:
    with pytest.raises(Malformed) as caught:
        Container(raw, where="c").commands  # noqa: B018
    assert caught.value.path == path


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


def test_an_optional_value_that_is_absent_leaves_what_envfrom_set() -> None:
    raw = {
        "name": "x",
        "envFrom": [{"configMapRef": {"name": "all"}}],
        "env": [
            {"name": "MODEL", "valueFrom": {"configMapKeyRef": {"name": "one", "key": "k", "optional": True}}}
        ],
    }
    c = Container(raw, configmaps={"all": {"MODEL": "org/from-envfrom"}, "one": {}})
    assert dict(c.env) == {"MODEL": "org/from-envfrom"}  # as the kubelet: the entry is skipped


# -- red team, 2026-12-07 -------------------------------------------------------------------

MARK = "\x00"


def test_programs_run_through_a_wrapper_in_exec_form() -> None:
    """Wrappers were unwrapped inside shell scripts only: in exec form `env`, `tini --`,
    `nohup`, `numactl ...` and `busybox sh` hid the program they run."""
    for argv in (
        ["/usr/bin/env", "vllm", "serve", "org/m"],
        ["tini", "--", "vllm", "serve", "org/m"],
        ["numactl", "--cpunodebind=0", "-m", "0", "vllm", "serve", "org/m"],
        ["busybox", "sh", "-c", "vllm serve org/m"],
        ["mksh", "-c", "vllm serve org/m"],
    ):
        assert Container.of(command=argv).commands == (("vllm", "serve", "org/m"),), argv
    c = Container.of(command=["env", "HF_HUB_OFFLINE=1", "vllm", "serve", "org/m"])
    assert c.commands == (("vllm", "serve", "org/m"),)
    assert c.lines[0].env.get("HF_HUB_OFFLINE") == "1"


def test_xargs_adds_arguments_nobody_can_see() -> None:
    for c in (
        Container.of(command=["sh", "-c", "echo org/m | xargs vllm serve"]),
        Container.of(command=["xargs", "-a", "models.txt", "vllm", "serve"]),
    ):
        *_, words = c.commands
        assert words[:2] == ("vllm", "serve") and MARK in words[-1]


@pytest.mark.parametrize("options", [["--"], ["-e"], ["-x", "+e"]])
def test_shell_options_after_dash_c_come_before_the_script(options: list[str]) -> None:
    c = Container.of(command=["bash", "-c", *options, "vllm serve org/m"])
    assert c.commands == (("vllm", "serve", "org/m"),)


def test_lifecycle_hooks_and_exec_probes_are_command_lines() -> None:
    start = {"exec": {"command": ["sh", "-c", "nohup vllm serve org/m &"]}}
    raw = {
        "name": "x",
        "command": ["sleep", "infinity"],
        "lifecycle": {"postStart": start, "preStop": {"httpGet": {"port": 80}}},
        "startupProbe": {"exec": {"command": ["llama-server", "-m", "/m/x.gguf"]}},
    }
    assert Container(raw).commands == (
        ("sleep", "infinity"),
        ("vllm", "serve", "org/m"),
        ("llama-server", "-m", "/m/x.gguf"),
    )
    with pytest.raises(Malformed, match=r"lifecycle\.postStart\.exec\.command"):
        Container({"name": "x", "lifecycle": {"postStart": {"exec": {"command": "vllm"}}}})


@pytest.mark.parametrize("name", [".M", "-M", "1M", "M:X"])
def test_kubelet_expands_every_variable_name_it_allows(name: str) -> None:
    """With relaxed validation (default from Kubernetes 1.32) any printable name but '='
    is a variable, and the kubelet expands $(name) of each."""
    c = Container(
        {"name": "x", "command": ["vllm", "serve", f"$({name})"], "env": [{"name": name, "value": "org/m"}]}
    )
    assert c.commands == (("vllm", "serve", "org/m"),)


def test_variables_built_from_variables_stop_growing() -> None:
    """E1=$(E0)$(E0), E2=$(E1)$(E1)...: 30 entries asked for gigabytes; past 64 KiB of
    growth a value is unknown (and judged as such), in the kubelet's and a shell's view."""
    env = [{"name": "E0", "value": "x" * 64}] + [
        {"name": f"E{i}", "value": f"$(E{i - 1})$(E{i - 1})"} for i in range(1, 40)
    ]
    c = Container({"name": "x", "command": ["vllm", "serve", "$(E39)"], "env": env})
    [(_, _, model)] = c.commands
    assert MARK in model and len(model) <= (64 << 10) + 100
    script = (
        "A0=xxxxxxxx\n" + "".join(f"A{i}=$A{i - 1}$A{i - 1}\n" for i in range(1, 40)) + "vllm serve $A39\n"
    )
    [(_, _, model)] = Container.of(command=["sh", "-c", script]).commands
    assert MARK in model and len(model) <= (64 << 10) + 100


def test_a_script_that_alternates_assignments_and_commands_is_read_in_bounded_time() -> None:
    """Each command after an assignment got a copy of the whole environment: 765 KiB of
    such script took ten seconds. Past the bound the rest is unresolved (fail closed)."""
    import time

    script = "".join(f"V{i}=1; true\n" for i in range(5000)) + "vllm serve org/m\n"
    c = Container.of(command=["sh", "-c", script])
    started = time.perf_counter()
    commands = c.commands
    assert time.perf_counter() - started < 5  # generous: a regression is minutes
    assert ("vllm", "serve", "org/m") not in commands
    assert any("stopped reading it" in problem.why for problem in c.problems)


@pytest.mark.parametrize(
    "argv",
    [
        ["env", "-S", "vllm serve org/m"],
        ["env", "--split-string=vllm serve org/m"],
        ["sh", "-c", "env -S 'vllm serve org/m'"],
    ],
)
def test_env_split_string_is_the_command_it_runs(argv: list[str]) -> None:
    assert Container.of(command=argv).commands == (("vllm", "serve", "org/m"),)
