"""Relative paths and ``~`` in command lines, resolved the way the container resolves them
(modelsec.references.paths): against ``workingDir`` and ``$HOME``, unresolved where the
image decides, ``..`` folded (docs/webhook.md, "Local paths")."""

from __future__ import annotations

from typing import Any

import pytest
from reference_helpers import extraction, pod

from modelsec.references import Extraction
from modelsec.references.shell import split_script

HOME = {"name": "HOME", "value": "/models/home"}


def container(command: list[str], **fields: Any) -> dict[str, Any]:
    return {"name": "s", "image": "python", "command": command, **fields}


def found(command: list[str], **fields: Any) -> Extraction:
    return extraction("Pod", pod(container(command, **fields)))


def refs(command: list[str], **fields: Any) -> list[str]:
    return [str(r.ref) for r in found(command, **fields).references]


def whys(command: list[str], **fields: Any) -> list[str]:
    return [u.why for u in found(command, **fields).unresolved]


# --- relative paths against workingDir ---------------------------------------------------------


@pytest.mark.parametrize(
    "command, expected",
    [
        (["vllm", "serve", "./llama"], "file:///models/team/llama"),
        (["vllm", "serve", "--model", "../team/llama"], "file:///models/team/llama"),
        (["vllm", "serve", "."], "file:///models/team"),
        (["vllm", "serve", "sub/dir/llama"], "file:///models/team/sub/dir/llama"),  # not org/name
        (["llama-server", "-m", "model.gguf"], "file:///models/team/model.gguf"),  # -m takes a path
        (["llama-server", "-m", "x.gguf", "--lora", "adapter.gguf"], "file:///models/team/adapter.gguf"),
        (["tritonserver", "--model-repository=repo"], "file:///models/team/repo"),
        (["text-generation-launcher", "--model-id", "./llama"], "file:///models/team/llama"),
    ],
)
def test_a_relative_path_is_resolved_against_working_dir(command: list[str], expected: str) -> None:
    assert expected in refs(command, workingDir="/models/team")


def test_a_relative_path_without_working_dir_is_unresolved_not_ignored() -> None:
    for command in (["vllm", "serve", "./llama"], ["llama-server", "-m", "model.gguf"]):
        result = found(command)
        assert result.references == ()
        assert "the image decides where relative paths lead" in result.unresolved[0].why, command


def test_dot_dot_segments_are_folded_so_an_escape_lands_where_it_leads() -> None:
    assert refs(["vllm", "serve", "../../etc/evil"], workingDir="/models/team") == ["file:///etc/evil"]
    assert refs(["llama-server", "-m", "a/../../other/x.gguf"], workingDir="/models/team") == [
        "file:///models/other/x.gguf"
    ]


def test_hub_ids_and_single_names_are_read_as_before() -> None:
    assert refs(["vllm", "serve", "org/name"], workingDir="/models/team") == ["hf://org/name"]
    assert found(["vllm", "serve", "gpt2"], workingDir="/models/team").references == ()
    assert found(["vllm", "serve", "gpt2"]).unresolved == ()


def test_a_relative_working_dir_is_unresolved() -> None:
    assert "not an absolute path" in whys(["vllm", "serve", "./m"], workingDir="models")[0]


# --- the shell's directory -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        ["sh", "-c", "cd /elsewhere && vllm serve ./llama"],
        ["sh", "-c", "vllm serve ./llama; cd /elsewhere"],  # a loop could run it after the cd
        ["sh", "-c", "pushd /x; vllm serve ./llama"],
        ["sh", "-c", ". ./env.sh; vllm serve ./llama"],
        ["sh", "-c", "env -C /x vllm serve ./llama"],
        ["sh", "-c", "nice -n 5 env --chdir=/x vllm serve ./llama"],
        ["sh", "-c", "X=1 env -iC/x vllm serve ./llama"],
        ["env", "--chdir", "/x", "vllm", "serve", "./llama"],
        ["sudo", "-D", "/x", "vllm", "serve", "./llama"],
    ],
)
def test_a_script_or_wrapper_that_changes_directory_leaves_relative_paths_unresolved(
    command: list[str],
) -> None:
    result = found(command, workingDir="/models/team")
    assert result.references == () and "relative path './llama'" in result.unresolved[0].why


def test_a_script_that_does_not_change_directory_keeps_working_dir() -> None:
    assert refs(["sh", "-c", "echo start; exec vllm serve ./llama"], workingDir="/models/team") == [
        "file:///models/team/llama"
    ]
    # another program started elsewhere does not move the script
    assert refs(["sh", "-c", "env -C /x true; vllm serve ./llama"], workingDir="/models/team") == [
        "file:///models/team/llama"
    ]


# --- ~ -------------------------------------------------------------------------------------------


def test_a_tilde_the_shell_expands_is_home() -> None:
    assert refs(["sh", "-c", "vllm serve ~/llama"], env=[HOME]) == ["file:///models/home/llama"]
    assert refs(["sh", "-c", "M=~/llama; vllm serve $M"], env=[HOME]) == ["file:///models/home/llama"]
    assert refs(["sh", "-c", "export M=~/llama\nvllm serve $M"], env=[HOME]) == ["file:///models/home/llama"]
    assert refs(["sh", "-c", "HOME=/models/h2 vllm serve ~/llama"], env=[HOME]) == [
        "file:///models/home/llama"  # the shell expands ~ before the assignment applies
    ]


def test_a_tilde_without_home_in_the_pod_spec_is_unresolved() -> None:
    result = found(["sh", "-c", "vllm serve ~/llama"], workingDir="/w")
    assert result.references == () and "$HOME is not set in the pod spec" in result.unresolved[0].why


def test_a_tilde_that_reaches_the_program_is_read_both_ways() -> None:
    """Exec form or quoted: the program gets `~` itself; it opens ./~/x unless it expands it."""
    for command in (["vllm", "serve", "~/llama"], ["sh", "-c", "vllm serve '~/llama'"]):
        assert refs(command, env=[HOME], workingDir="/w") == [
            "file:///models/home/llama",
            "file:///w/~/llama",
        ], command
    result = found(["vllm", "serve", "~/llama"], env=[HOME])  # no workingDir: one reading unknown
    assert [str(r.ref) for r in result.references] == ["file:///models/home/llama"]
    assert "the image decides" in result.unresolved[0].why


def test_other_home_directories_and_shell_dependent_tildes_are_unresolved() -> None:
    assert "user database" in whys(["sh", "-c", "vllm serve ~root/llama"], env=[HOME])[0]
    assert "user database" in whys(["sh", "-c", "vllm serve ~+/llama"], env=[HOME])[0]
    assert "bash expands" in whys(["sh", "-c", "vllm serve a=~/llama"], env=[HOME], workingDir="/w")[0]
    assert "user database" in whys(["vllm", "serve", "~root/llama"], env=[HOME], workingDir="/w")[0]


@pytest.mark.parametrize(
    "script, expected",
    [
        ("vllm serve ~/m", ("vllm", "serve", "/H/m")),
        ("vllm serve ~", ("vllm", "serve", "/H")),
        ("vllm serve '~/m'", ("vllm", "serve", "~/m")),
        ('vllm serve "~/m"', ("vllm", "serve", "~/m")),
        ("vllm serve \\~/m", ("vllm", "serve", "~/m")),
        ("vllm serve a~/m", ("vllm", "serve", "a~/m")),
        ("vllm serve --model=~/m", ("vllm", "serve", "--model=~/m")),  # no shell expands it
        ('echo "it\'s" ~/m # ~/c', ("echo", "it's", "/H/m")),
    ],
)
def test_tilde_expansion_follows_the_shell(script: str, expected: tuple[str, ...]) -> None:
    assert split_script(script, {"HOME": "/H"}) == (expected,)
