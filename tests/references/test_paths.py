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
        # red team, session 23: a cd the first reading did not see
        ["sh", "-c", "X=1 cd /x; vllm serve ./llama"],
        ["sh", "-c", "c=cd; $c /x; vllm serve ./llama"],
        ["sh", "-c", "$(echo cd) /x; vllm serve ./llama"],
        ["sh", "-c", "function go { cd /x; }; go; vllm serve ./llama"],
        ["sh", "-c", "go() { true; }; vllm serve ./llama"],
        ["zsh", "-c", "chdir /x; vllm serve ./llama"],
        ["bash", "-c", "alias go='cd /x'; go; vllm serve ./llama"],
        ["bash", "-c", "trap 'cd /x' DEBUG; vllm serve ./llama"],
        ["sh", "-c", "eval 'cd /x'; vllm serve ./llama"],
        ["bash", "-lc", "vllm serve ./llama"],  # a login shell's profile runs first
        ["bash", "-i", "-c", "vllm serve ./llama"],
        ["sh", "-c", "env --ch=/x vllm serve ./llama"],  # getopt_long reads a prefix
        ["sh", "-c", "sudo --chd=/x vllm serve ./llama"],
        ["sh", "-c", "env -S '-C /x vllm serve ./llama'"],
        ["env", "A=1", "env", "-C", "/x", "vllm", "serve", "./llama"],
        ["sudo", "-i", "vllm", "serve", "./llama"],
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


def test_bash_env_makes_the_directory_and_the_variables_unknown() -> None:
    """$BASH_ENV (a file the pod may mount) runs before the script: it may cd, or set the
    variable that names the model (red team, session 23)."""
    env = [{"name": "BASH_ENV", "value": "/etc/cfg/env.sh"}, {"name": "M", "value": "org/good"}]
    result = found(["bash", "-c", "vllm serve ./llama; vllm serve $M"], workingDir="/models/team", env=env)
    assert result.references == ()
    assert len(result.unresolved) == 2


def test_pwd_is_the_shells_not_the_pod_specs() -> None:
    env = [{"name": "PWD", "value": "/models/team"}]
    result = found(["sh", "-c", "vllm serve $PWD/llama"], env=env)
    assert result.references == () and "sets $PWD" in result.unresolved[0].why


@pytest.mark.parametrize("quoted", ["$'/models/blocked/x'", '$"/models/blocked/x"'])
def test_bash_ansi_quoting_is_unknown_not_a_relative_path(quoted: str) -> None:
    """``$'...'`` was read as ``$`` followed by a quoted string: a relative path "$/..."."""
    result = found(["bash", "-c", f"vllm serve {quoted}"], workingDir="/models/allowed")
    assert result.references == () and "quoting" in result.unresolved[0].why


def test_eval_runs_its_words_as_a_script() -> None:
    """An eval of a whole command line was one word, not a program: the model was not seen."""
    assert "file:///models/blocked/x" in refs(["sh", "-c", "eval 'vllm serve /models/blocked/x'"])
    result = found(["sh", "-c", 'eval "$E"; vllm serve $M'], env=[{"name": "M", "value": "org/good"}])
    assert result.references == ()  # eval may have set $M


def test_unset_makes_a_variable_unknown() -> None:
    env = [{"name": "M", "value": "org/good"}]
    assert found(["sh", "-c", "unset M; vllm serve ${M:-/models/blocked/x}"], env=env).references == ()


def test_wrapper_values_given_in_clusters_and_prefixes_are_skipped() -> None:
    """``env --chd DIR`` and ``sudo -SD DIR`` take DIR as the option's value: the program is
    the word after it (it was read as DIR, and the model dropped)."""
    for command in (
        ["env", "--chd", "/x", "vllm", "serve", "org/m"],
        ["sudo", "-SD", "/x", "vllm", "serve", "org/m"],
    ):
        assert "hf://org/m" in refs(command), command


def test_whitespace_is_part_of_a_relative_path() -> None:
    """ " ../../tmp/x" opens a directory named " .." inside the working directory; stripped,
    it was judged as /tmp/x, outside every source."""
    assert refs(["llama-server", "-m", " ../../tmp/x.gguf"], workingDir="/models/blocked") == [
        "file:///models/blocked/tmp/x.gguf"
    ]


def test_llama_cpp_takes_the_next_word_whatever_it_looks_like() -> None:
    """llama.cpp reads ``argv[++i]``: ``-m -evil.gguf`` opens ``./-evil.gguf``, which was not
    read as the model at all (red team, session 23)."""
    assert refs(["llama-server", "-m", "-evil.gguf"], workingDir="/models/blocked") == [
        "file:///models/blocked/-evil.gguf"
    ]
    assert "file:///models/blocked/-x.gguf" in refs(
        ["llama-server", "-m", "/models/ok.gguf", "--lora", "-x.gguf"], workingDir="/models/blocked"
    )
