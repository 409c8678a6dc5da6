"""Shell scripts (``sh -c '<script>'``) as the command lines they run.

A script is split into its simple commands with :mod:`shlex` and read in order, with the
shell's view of variables: the container's environment, the script's own assignments
(``MODEL=x``, ``export MODEL=x``, ``MODEL=x prog``) and its positional parameters
(``sh -c 'vllm serve "$1"' sh org/m``). Nested shells (``sh -c "bash -c '...'"``) are
split too, up to :data:`MAX_DEPTH`.

Control flow is not evaluated, so whatever could make a value depend on it is *unknown*
(a marker, see :mod:`.container`) rather than guessed: a variable assigned in more than
one place or by ``for``/``read``, anything after ``source``/``eval``, positional
parameters once the script defines functions or uses ``set``/``shift``, command
substitutions, ``${VAR...}`` forms other than defaults, and variables the pod spec does
not set (the image may). A script longer than :data:`MAX_SCRIPT` is read up to there and
reported: beyond the cap nothing is assumed.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Iterator

from modelsec.references.container import TOO_LONG, Env, Unknown, bounded_sub
from modelsec.references.model import Unresolved

SHELLS = frozenset({"sh", "bash", "ash", "dash", "zsh", "ksh", "mksh", "yash", "posh", "oksh", "loksh"})
MAX_SCRIPT = 64 * 1024  # shlex reads ~3 MB/s: this bounds a review's work
# Variables copied into the environments of a script's commands (each command after an
# assignment gets its own copy): alternating assignments and commands made that work
# grow with the square of the script, 10 s for one review.
MAX_COPIED = 200_000
MAX_DEPTH = 4
_OPERATORS = ";&|()<>\n"
_ASSIGNMENT = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$", re.DOTALL)
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_EXPANSION = re.compile(r"\$(?:\{([^}]*)\}|([A-Za-z_][A-Za-z0-9_]*)|([0-9@*#?$!-]))")
_DEFAULTS = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*|[0-9]+)(:?[-=?+])(.*)$", re.DOTALL)
_FUNCTION = re.compile(r"(?:^|[\s;&|{(])(?:function\s+[^\s(]+|[A-Za-z_][\w.:-]*\s*\(\s*\))")
_SPLICE = frozenset({"$@", "${@}", "$*", "${*}"})
_DECLARE = frozenset({"export", "readonly", "local", "declare", "typeset"})
_OPAQUE = frozenset({"source", ".", "eval"})
# Builtins that change the shell's working directory (relative paths lead from it), and
# those that keep shell code to run later, which may (zsh's chdir; alias, trap, a function).
_CHDIR = frozenset({"cd", "pushd", "popd", "chdir"})
_LATER_CODE = frozenset({"alias", "trap"})
# Shell options that run startup files first (a ~/.bashrc or $BASH_ENV the pod may mount):
# whatever they do to the directory or the variables is not in the script.
_STARTUP_OPTIONS = ("-l", "-i", "--login", "--rcfile", "--init-file")
_STARTUP_FILES = ("BASH_ENV", "ENV")
# Wrappers whose options start the command in another directory: (wrapper, short option, long option).
_CHDIR_OPTIONS = {"env": ("C", "--chdir"), "sudo": ("D", "--chdir")}

# Words that run the rest of the line as a command: (name, options taking a value, how many
# plain arguments precede the command).
_WRAPPERS: dict[str, tuple[frozenset[str], int]] = {
    "exec": (frozenset({"-a"}), 0),
    "nohup": (frozenset(), 0),
    "time": (frozenset({"-f", "-o"}), 0),
    "command": (frozenset(), 0),
    "builtin": (frozenset(), 0),
    "eval": (frozenset(), 0),
    "env": (frozenset({"-u", "-C", "-S", "--unset", "--chdir"}), 0),
    "nice": (frozenset({"-n", "--adjustment"}), 0),
    "timeout": (frozenset({"-s", "-k", "--signal", "--kill-after"}), 1),
    "setsid": (frozenset(), 0),
    "stdbuf": (frozenset({"-i", "-o", "-e"}), 0),
    "tini": (frozenset({"-s", "-p", "-e"}), 0),
    "dumb-init": (frozenset({"-r", "--rewrite"}), 0),
    "gosu": (frozenset(), 1),
    "su-exec": (frozenset(), 1),
    "sudo": (
        frozenset({"-u", "-g", "-C", "-D", "-h", "-p", "-r", "-t", "-U", "--user", "--group", "--chdir"}),
        0,
    ),
    "numactl": (
        frozenset(
            {
                "-i",
                "-m",
                "-N",
                "-C",
                "-p",
                "--interleave",
                "--membind",
                "--cpunodebind",
                "--physcpubind",
                "--preferred",
            }
        ),
        0,
    ),
    "taskset": (frozenset(), 1),  # taskset <mask> <command>
    "busybox": (frozenset(), 0),  # busybox <applet> ...: the applet is the program
    # xargs adds arguments read from its input, which modelsec cannot see: what it runs
    # is read as written (a model among the unseen words is not judged, see docs/webhook.md)
    "xargs": (
        frozenset(
            {
                "-a",
                "-d",
                "-E",
                "-I",
                "-L",
                "-n",
                "-P",
                "-s",
                "--arg-file",
                "--delimiter",
                "--max-args",
                "--max-procs",
            }
        ),
        0,
    ),
    "catatonit": (frozenset(), 0),
    "chrt": (frozenset(), 1),
    "ionice": (frozenset({"-c", "-n", "-p", "--class", "--classdata"}), 0),
}

Wrapped = tuple[str, list[str]]  # a wrapper _unwrap dropped, and its option words

# Reserved words that may start a line before the command they introduce.
_RESERVED = frozenset({"if", "then", "else", "elif", "do", "while", "until", "{", "!"})

XARGS_INPUT = Unknown("xargs adds arguments read from its input, which modelsec cannot see")
CMD_SUBSTITUTION = Unknown("it is the output of a command substitution, which modelsec does not run")
CHANGES_DIRECTORY = Unknown(
    "the script changes its working directory (cd, pushd, popd, source or eval), so where relative paths "
    "lead depends on its control flow"
)
CHDIR_OPTION = Unknown("the program is started in another directory (env --chdir, sudo --chdir)")
STARTUP_FILES = Unknown(
    "the shell runs startup files first ($BASH_ENV, $ENV, a login or interactive shell's profile), "
    "which may change its working directory"
)
SHELL_PWD = Unknown("the shell sets $PWD and $OLDPWD itself, whatever the pod spec says")
ANSI_QUOTES = Unknown("bash's $'...' and $\"...\" quoting, which modelsec does not read")
OTHER_HOME = Unknown("~name, ~+ and ~- name directories the image's user database or the shell decides")
# `NAME=~` as a command's argument: bash expands the ~, dash and others do not. Only an
# assignment (Script._assign) reads it as $HOME; anywhere else it is unknown.
# NUL never comes from the API server (see container.MARK): the text cannot be forged.
_ASSIGNED_TILDE = "${\x00~\x00}"
NOT_IN_SPEC = "${name} is not set in the pod spec (the image or a file may set it)"


def shell_script(argv: tuple[str, ...]) -> tuple[str, tuple[str, ...]] | None:
    """(script, positional parameters $0 $1 ...) of ``sh [options] -c <script> [args]``."""
    if not argv or argv[0].rsplit("/", 1)[-1] not in SHELLS:
        return None
    i, command_string = 1, False
    while i < len(argv):
        word = argv[i]
        if word in ("-o", "+o", "-O", "+O", "--rcfile", "--init-file"):
            i += 2
            continue
        if word.startswith("--"):
            if word == "--":  # the end of the options: the script (with -c) or a file
                return (argv[i + 1], argv[i + 2 :]) if command_string and i + 1 < len(argv) else None
            i += 1
            continue
        if len(word) > 1 and word[0] in "-+":
            # -c, or clustered flags holding c (-ec, -xc, -ce): the first word after the
            # options is the script (sh -c -e '...', bash -c -x '...' run it too)
            command_string = command_string or (word[0] == "-" and "c" in word[1:])
            i += 1
            continue
        if command_string:
            return word, argv[i + 1 :]
        return None  # a script file: not something the pod spec shows
    return None


def command_lines(
    argv: tuple[str, ...],
    env: Env,
    report: Callable[[Unresolved], None],
    describe: Callable[[str], str],
    depth: int = 0,
) -> Iterator[tuple[tuple[str, ...], Env]]:
    """(words, environment) of every command ``argv`` runs."""
    argv, env = _exec_form(argv, env)
    found = shell_script(argv)
    if found is None:
        yield argv, env
        return
    script, positional = found
    startup = _runs_startup_files(argv, env)
    if depth >= MAX_DEPTH:
        report(
            Unresolved(
                describe(argv[0].rsplit("/", 1)[-1] + " -c"),
                f"shell scripts nested more than {MAX_DEPTH} deep are not read",
            )
        )
        yield argv, env
        return
    if len(script) > MAX_SCRIPT:
        report(
            Unresolved(
                describe(argv[0].rsplit("/", 1)[-1] + " -c"),
                f"its shell script is {len(script)} characters long; modelsec reads "
                f"{MAX_SCRIPT} and cannot judge the rest",
            )
        )
        script = script[:MAX_SCRIPT]
    emitted = False
    reading = Script(script, env, positional, startup=STARTUP_FILES if startup else None)
    for words, line_env in reading.lines():
        emitted = True
        yield from command_lines(words, line_env, report, describe, depth + 1)
    if reading.cut_short:
        report(
            Unresolved(
                describe(argv[0].rsplit("/", 1)[-1] + " -c"),
                "its shell script sets variables between so many commands that modelsec "
                "stopped reading it and cannot judge the rest",
            )
        )
    if not emitted:
        yield argv, env


def split_script(
    script: str, env: dict[str, str] | None = None, positional: tuple[str, ...] = ()
) -> tuple[tuple[str, ...], ...]:
    """The simple commands of a shell script (for tests and tools): ``env`` holds known
    variables; unknown ones come out as markers."""
    from modelsec.references.container import Marks

    shell_env = Env(Marks(0), dict(env or {}))
    return tuple(words for words, _ in Script(script, shell_env, positional).lines())


class Script:
    """One script, read line by line with a shell's view of its variables."""

    def __init__(
        self, script: str, env: Env, positional: tuple[str, ...], startup: Unknown | None = None
    ) -> None:
        self.env = env.copy()
        self.positional: tuple[str, ...] | None = positional or ("sh",)
        self.raw_lines = _lex(_tildes(_hide_substitutions(script, env), env))
        self.ambiguous: dict[str, Unknown] = {}
        self.opaque: Unknown | None = None
        self.assigned_since_opaque: set[str] = set()
        self._snapshot: Env | None = None  # the environment lines yielded so far share
        self.copied = 0  # variables copied into snapshots (MAX_COPIED)
        self.cut_short = False
        if _FUNCTION.search(script):
            self.positional = None  # "$1" inside a function is the function's argument
            self.env.cwd = CHANGES_DIRECTORY  # and its body runs wherever it is called
        for name in ("PWD", "OLDPWD"):
            self.env.values.pop(name, None)
            self.env.unknown[name] = SHELL_PWD
        self._survey()
        if startup is not None:  # startup files run first: any variable, any directory
            self.env.cwd = startup
            self._opaque(startup)

    # -- what the whole script does to variables ------------------------------------------

    def _survey(self) -> None:
        assigned: dict[str, int] = {}
        for raw in self.raw_lines:
            words = _unwrap(raw)
            if not words:
                continue
            head = words[0]
            if _may_change_directory(raw):
                # Every line's directory may be another (loops run lines after a later cd).
                self.env.cwd = CHANGES_DIRECTORY
            if head == "shift" or (
                head == "set" and any(not w.startswith(("-", "+")) or w == "--" for w in words[1:])
            ):
                self.positional = None
            names: list[str] = []
            if head == "for" and len(words) > 1:
                names.append(words[1])
                assigned[words[1]] = 2  # a loop variable takes several values
            elif head in ("read", "getopts", "mapfile", "readarray", "unset"):
                for word in words[1:]:
                    if _NAME.match(word):
                        assigned[word] = 2
            else:
                body = words[1:] if head in _DECLARE else words
                for word in body:
                    match = _ASSIGNMENT.match(word)
                    if match is None:
                        if head in _DECLARE:
                            continue
                        break
                    names.append(match.group(1))
            for name in names:
                assigned[name] = assigned.get(name, 0) + 1
        self.ambiguous = {
            name: Unknown(f"${name} is set in more than one place in the script")
            for name, count in assigned.items()
            if count > 1
        }

    # -- reading it in order -----------------------------------------------------------------

    def lines(self) -> Iterator[tuple[tuple[str, ...], Env]]:
        for words in self.raw_lines:
            from_input = _reads_arguments_from_input(words)
            seen: list[Wrapped] = []  # one walk of the wrappers serves every question below
            words = _unwrap(words, seen)
            if not words:
                continue
            if words[0] in _DECLARE:
                self._declare(words[1:])
                continue
            prefix: list[tuple[str, str]] = []
            while words:
                match = _ASSIGNMENT.match(words[0])
                if match is None:
                    break
                prefix.append((match.group(1), match.group(2)))
                words = _unwrap(words[1:], seen)
            elsewhere = any(_moves(wrapper, options) for wrapper, options in seen)
            evaluated = any(wrapper == "eval" for wrapper, _ in seen)
            if not words:  # only assignments: shell variables from here on
                for name, value in prefix:
                    self._assign(name, value)
                continue
            expanded = self._expand_words(words)
            if from_input:
                expanded.append(self.env.marks.mark(XARGS_INPUT))
            if self._snapshot is None:  # later assignments must not change this line's view
                self.copied += len(self.env.values) + len(self.env.unknown)
                if self.copied > MAX_COPIED:
                    self.cut_short = True
                    return
                self._snapshot = self.env.copy()
            line_env = self._snapshot
            if prefix or elsewhere:
                line_env = line_env.copy()
                for name, value in prefix:
                    line_env.set(name, self._expand(value, assignment=True))
                if elsewhere:
                    line_env.cwd = CHDIR_OPTION
            if evaluated:
                # eval joins its words and runs them as shell code: read as `sh -c` reads
                # its script (an eval of a whole command line was one word, not a program)
                expanded = ["sh", "-c", " ".join(expanded)]
                self._opaque(Unknown("the script runs `eval` before it, which may set it"))
            elif words[0] in _OPAQUE:
                self._opaque(Unknown(f"the script runs `{words[0]}` before it, which may set it"))
            if expanded:
                yield tuple(expanded), line_env

    def _declare(self, words: tuple[str, ...]) -> None:
        for word in words:
            match = _ASSIGNMENT.match(word)
            if match is not None:
                self._assign(match.group(1), match.group(2))
            elif not word.startswith("-") and not _NAME.match(word):
                # export $(cat env) and the like: any variable may be set now
                self._opaque(Unknown("the script exports variables modelsec cannot see"))

    def _opaque(self, why: Unknown) -> None:
        self.opaque = why
        self.assigned_since_opaque = set()
        # What the next programs inherit is unknown too (TGI reads MODEL_ID from it).
        self.env = self.env.copy()
        for name in list(self.env.values):
            self.env.forget(name, why)
        self.env.wildcards = (*self.env.wildcards, ("", why))
        self._snapshot = None

    def _assign(self, name: str, value: str) -> None:
        why = self.ambiguous.get(name)
        if why is not None:
            self.env.forget(name, why)
        else:
            self.env.set(name, self._expand(value, assignment=True))
            self.assigned_since_opaque.add(name)
        self._snapshot = None

    # -- expansion -----------------------------------------------------------------------

    def _lookup(self, name: str) -> str:
        mark = self.env.marks.mark
        if name in self.ambiguous:
            return mark(self.ambiguous[name])
        if self.opaque is not None and name not in self.assigned_since_opaque:
            return mark(self.opaque)
        value = self.env.values.get(name)
        if value is not None:
            return value
        why = self.env.why_unknown(name)
        return mark(why or Unknown(NOT_IN_SPEC.replace("{name}", name)))

    def _param(self, index: int) -> str:
        if self.positional is None:
            return self.env.marks.mark(Unknown("positional parameters change in the script"))
        return self.positional[index] if index < len(self.positional) else ""

    def _expand_words(self, words: tuple[str, ...]) -> list[str]:
        out: list[str] = []
        for word in words:
            if word in _SPLICE:
                if self.positional is None:
                    out.append(self._param(0))
                else:
                    out.extend(self.positional[1:])
                continue
            out.append(self._expand(word))
        return out

    def _expand(self, word: str, assignment: bool = False) -> str:
        if assignment and word.startswith(_ASSIGNED_TILDE):
            word = "${HOME}" + word[len(_ASSIGNED_TILDE) :]  # NAME=~/x: ~ expands in assignments
        if "$" not in word:
            return word
        expanded = bounded_sub(_EXPANSION, self._replace, word)
        return self.env.marks.mark(TOO_LONG) if expanded is None else expanded

    def _replace(self, match: re.Match[str]) -> str:
        braced, name, special = match.groups()
        if name is not None:
            return self._lookup(name)
        if special is not None:
            if special.isdigit():
                return self._param(int(special))
            if special in "@*":
                return " ".join(self.positional[1:]) if self.positional is not None else self._param(0)
            return self.env.marks.mark(Unknown(f"${special} is set by the shell at run time"))
        inner = braced or ""
        if inner == _ASSIGNED_TILDE[2:-1]:
            return self.env.marks.mark(
                Unknown("bash expands ~ after NAME= in a command's argument, other shells do not")
            )
        if _NAME.match(inner):
            return self._lookup(inner)
        if inner.isdigit():
            return self._param(int(inner))
        defaults = _DEFAULTS.match(inner)
        if defaults is not None:
            target, op, alternative = defaults.groups()
            value = self._param(int(target)) if target.isdigit() else self._lookup(target)
            if "\x00" in value:
                return value  # unknown: so is the result
            if op.endswith("+"):
                return self._expand(alternative) if value else ""
            if value or not op.startswith(":"):
                return value
            return self._expand(alternative)
        return self.env.marks.mark(Unknown(f"${{{inner}}} is computed by the shell at run time"))


_WORD_END = frozenset(" \t\r\n" + _OPERATORS)
_LOGIN = re.compile(r"[A-Za-z0-9._+-]*")


def _tildes(script: str, env: Env) -> str:
    """The script with each ``~`` the shell expands (unquoted, at the start of a word or
    after ``NAME=``, followed by ``/`` or the word's end) written as ``${HOME}``; ``~name``,
    ``~+`` and ``~-`` as an unknown value. Quoted or escaped tildes stay literal, as the
    shell leaves them. Runs before lexing, which drops the quotes that decide it."""
    if "~" not in script:
        return script
    out: list[str] = []
    i, n = 0, len(script)
    word_start, word = True, 0  # at a word's first character; where the word began
    quote = ""
    while i < n:
        ch = script[i]
        if quote:
            if ch == quote:
                quote = ""
            elif ch == "\\" and quote == '"':
                out.append(script[i : i + 2])
                i += 2
                continue
            out.append(ch)
            i += 1
            continue
        if ch in _WORD_END:
            word_start, word = True, i + 1
            out.append(ch)
            i += 1
            continue
        if ch == "#" and word_start:  # a comment, to the end of its line
            end = script.find("\n", i)
            end = n if end < 0 else end
            out.append(script[i:end])
            i = end
            continue
        after_name = ch == "~" and script[i - 1 : i] == "=" and _NAME.match(script[word : i - 1]) is not None
        if ch == "~" and (word_start or after_name):
            login = _LOGIN.match(script, i + 1)
            end = login.end() if login else i + 1
            if end >= n or script[end] == "/" or script[end] in _WORD_END:
                if end == i + 1:
                    out.append("${HOME}" if word_start else _ASSIGNED_TILDE)
                else:
                    out.append(env.marks.mark(OTHER_HOME))
                i, word_start = end, False
                continue
        word_start = False
        if ch in "'\"":
            quote = ch
        elif ch == "\\":
            out.append(script[i : i + 2])
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def _program(words: tuple[str, ...], seen: list[Wrapped] | None = None) -> tuple[str, ...]:
    """The line from its program on: wrappers, reserved words and the assignments before
    the program (``X=1 cd ..``) dropped (each step drops a word: this ends)."""
    program = _unwrap(words, seen)
    while program and _ASSIGNMENT.match(program[0]):
        program = _unwrap(program[1:], seen)
    return program


def _runs_startup_files(argv: tuple[str, ...], env: Env) -> bool:
    """Whether the shell ``argv`` starts reads startup files before its script: a login or
    interactive shell (``-l``, ``-i``, ``-lc``, ``--login``, ``--rcfile``), or ``$BASH_ENV``
    or ``$ENV`` set (or possibly set) for it (red team, session 23)."""
    for word in argv[1:]:
        if word == "--" or not word.startswith(("-", "+")):
            break
        if word in _STARTUP_OPTIONS or (
            not word.startswith("--") and word[0] == "-" and ("l" in word[1:] or "i" in word[1:])
        ):
            return True
    return any(name in env.values or env.why_unknown(name) is not None for name in _STARTUP_FILES)


def _may_change_directory(words: tuple[str, ...]) -> bool:
    """Whether a simple command may change the shell's own directory, for every line after
    it (and, in a loop, before it). Allowlist first: only a command whose name is written
    out, and is none of the builtins that change directory or run shell code (``cd``,
    ``eval``, ``source``, ``alias``, ``trap``), leaves it alone; an assignment before the
    name (``X=1 cd ..``) or a name the script computes (``$c``, ``$(echo cd)``) does not
    hide one (red team, session 23)."""
    seen: list[Wrapped] = []
    program = _program(words, seen)
    if any(wrapper == "eval" for wrapper, _ in seen):  # eval as a wrapper runs its words as shell code
        return True
    if not program:
        return False
    head = program[0]
    return head in _CHDIR or head in _OPAQUE or head in _LATER_CODE or not _literal(head)


def _literal(word: str) -> bool:
    """A command name the script writes out, not one it computes."""
    return not any(ch in word for ch in "$`\x00") and not word.startswith(("'", '"'))


def _changes_directory(words: tuple[str, ...]) -> bool:
    """Whether the wrappers before the program start it in another directory
    (``env -C dir``, ``env --chdir=dir``, ``sudo -D dir``), read as :func:`_unwrap` reads them."""
    seen: list[Wrapped] = []
    _unwrap(words, seen)
    return any(_moves(wrapper, options) for wrapper, options in seen)


def _moves(wrapper: str, options: list[str]) -> bool:
    """Whether one wrapper's options start its program in another directory."""
    short, long = _CHDIR_OPTIONS.get(wrapper, ("", ""))
    for word in options:
        name = word.partition("=")[0]
        if (
            short
            and (
                (name.startswith("--") and len(name) > 2 and long.startswith(name))  # --ch: getopt_long
                or (not word.startswith("--") and short in word[1:].partition("S")[0])
            )
        ):
            return True
        if wrapper == "env" and (
            word.startswith("-S") or (name.startswith("--s") and "--split-string".startswith(name))
        ):
            return True  # an env -S string not split: it may hold -C (read conservatively)
        if wrapper == "sudo" and (
            name in ("--login", "--lo", "--log", "--logi") or (not word.startswith("--") and "i" in word[1:])
        ):
            return True  # sudo -i: a login shell, in the target user's home
    return False


def _hide_substitutions(script: str, env: Env) -> str:
    """Replace ``$(...)``, ``$((...))`` and backquotes by a marker before lexing: their
    output is unknown, and shlex would split them into words and operators."""
    if "$(" not in script and "`" not in script and "$'" not in script and '$"' not in script:
        return script
    marker = env.marks.mark(CMD_SUBSTITUTION)
    out: list[str] = []
    i = 0
    while i < len(script):
        if script.startswith(("$'", '$"'), i):
            quote = script[i + 1]
            j = i + 2
            while j < len(script) and script[j] != quote:
                j += 2 if script[j] == "\\" else 1
            out.append(env.marks.mark(ANSI_QUOTES))
            i = j + 1
        elif script.startswith("$(", i):
            depth, j = 0, i + 1
            while j < len(script):
                if script[j] == "(":
                    depth += 1
                elif script[j] == ")":
                    depth -= 1
                    if depth == 0:
                        break
                j += 1
            out.append(marker)
            i = j + 1
        elif script[i] == "`":
            end = script.find("`", i + 1)
            out.append(marker)
            i = len(script) if end < 0 else end + 1
        else:
            out.append(script[i])
            i += 1
    return "".join(out)


# Scripts repeat across the Pods of a workload and shlex is slow (~3 MB/s): lexed scripts
# are kept, bounded by the characters they hold (a few MiB), oldest first out. Only
# scripts without substitutions are kept: those carry markers of one container.
_LEXED: dict[str, list[tuple[str, ...]]] = {}
_LEXED_BUDGET = 2 << 20
_lexed_size = 0


def _lex(script: str) -> list[tuple[str, ...]]:
    global _lexed_size
    found = _LEXED.get(script)
    if found is not None:
        return found
    lines = _lex_uncached(script)
    if "\x00" not in script and len(script) <= _LEXED_BUDGET // 8:
        while _LEXED and _lexed_size + 2 * len(script) > _LEXED_BUDGET:
            _lexed_size -= 2 * len(_LEXED.pop(next(iter(_LEXED))))
        _LEXED[script] = lines
        _lexed_size += 2 * len(script)  # the key, and words about as long
    return lines


def _lex_uncached(script: str) -> list[tuple[str, ...]]:
    """Simple commands as word tuples, unexpanded."""
    # Backslash-newline continues a line; a bare newline ends a command like `;` does.
    script = script.replace("\\\n", " ")
    lexer = shlex.shlex(script, posix=True, punctuation_chars=_OPERATORS)
    lexer.whitespace = " \t\r"
    lexer.whitespace_split = True
    # shlex's own comment handling swallows the newline that ends the comment (and with it
    # the command boundary), so comments are dropped below instead.
    lexer.commenters = ""
    try:
        words = list(lexer)
    except ValueError:  # unbalanced quotes: fall back to whitespace, still useful
        words = script.split()
    lines: list[tuple[str, ...]] = []
    current: list[str] = []
    in_comment = False
    for word in words:
        if word and all(ch in _OPERATORS for ch in word):
            if in_comment and "\n" not in word:
                continue
            in_comment = False
            if current:
                lines.append(tuple(current))
            current = []
            continue
        if in_comment or word.startswith("#"):
            in_comment = True
            continue
        current.append(word)
    if current:
        lines.append(tuple(current))
    return lines


def _exec_form(argv: tuple[str, ...], env: Env) -> tuple[tuple[str, ...], Env]:
    """``argv`` without the wrappers that run the rest of it (``/usr/bin/env``, ``tini --``,
    ``nohup``, ``numactl ...``), as a script's lines are read, and the environment with the
    assignments ``env X=1`` makes."""
    from_input = False
    while argv and argv[0].rsplit("/", 1)[-1] in _WRAPPERS:
        if _changes_directory((argv[0].rsplit("/", 1)[-1], *argv[1:])):  # env A=1 env -C dir: each one
            env = env.copy()
            env.cwd = CHDIR_OPTION
        from_input = from_input or argv[0].rsplit("/", 1)[-1] == "xargs"
        rest = _unwrap((argv[0].rsplit("/", 1)[-1], *argv[1:]))
        assignments = 0
        while assignments < len(rest) and _ASSIGNMENT.match(rest[assignments]):
            assignments += 1
        if assignments:
            env = env.copy()
            for word in rest[:assignments]:
                name, _, value = word.partition("=")
                env.set(name, value)
        argv = rest[assignments:]
    if from_input and argv:
        argv = (*argv, env.marks.mark(XARGS_INPUT))
    return argv, env


def _reads_arguments_from_input(words: tuple[str, ...]) -> bool:
    """Whether the line runs its program through ``xargs``, which appends arguments read
    from its input."""
    for word in words:
        if word == "xargs":
            return True
        if word not in _WRAPPERS and word not in _RESERVED and not word.startswith("-"):
            return False
    return False


def _unwrap(words: tuple[str, ...], seen: list[Wrapped] | None = None) -> tuple[str, ...]:
    """Drop reserved words and wrappers that run the rest of the line (``then``, ``exec``,
    ``env -i X=1``, ``timeout 30``, ...) so that the program they run comes first.
    ``env``'s assignments stay (they set the program's environment). The wrappers dropped,
    with their options, are added to ``seen``."""
    i = 0
    while i < len(words) and (words[i] in _WRAPPERS or words[i] in _RESERVED):
        if words[i] in _RESERVED:
            i += 1
            continue
        wrapper = words[i]
        options: list[str] = []
        if seen is not None:
            seen.append((wrapper, options))
        takes_value, plain = _WRAPPERS[wrapper]
        i += 1
        while i < len(words) and words[i].startswith("-") and words[i] != "-":
            if words[i] == "--":
                i += 1
                break
            if wrapper == "env" and (split := _split_string(words, i)) is not None:
                # env -S 'vllm serve <model>': the string is split into the command's words
                words = (*words[:i], *split[0], *words[i + split[1] :])
                continue
            options.append(words[i])
            i += 2 if _value_follows(words[i], takes_value) else 1
        i += plain
    return words[i:]


def _value_follows(word: str, takes_value: frozenset[str]) -> bool:
    """Whether a wrapper's option ``word`` takes the next word as its value: an option that
    takes one, an unambiguous prefix of a long one (``--ch`` for ``--chdir``, as getopt_long
    reads it), or a cluster of short options whose last one takes one (``-SD dir``). A
    value given in the word (``--chdir=dir``, ``-sKILL``) takes none."""
    if word in takes_value:
        return True
    if word.startswith("--"):
        return (
            "=" not in word
            and len(word) > 2
            and any(option.startswith(word) for option in takes_value if option.startswith("--"))
        )
    for at, flag in enumerate(word[1:], start=1):
        if f"-{flag}" in takes_value:  # the rest of the cluster, or else the next word, is its value
            return at == len(word) - 1
    return False


def _split_string(words: tuple[str, ...], i: int) -> tuple[list[str], int] | None:
    """``env -S STRING`` (``-SSTRING``, ``--split-string[=]STRING``) at ``words[i]``: the
    words STRING splits into, and how many words the option took; None for another option."""
    word = words[i]
    if word in ("-S", "--split-string"):
        if i + 1 >= len(words):
            return None
        text, used = words[i + 1], 2
    elif word.startswith("--split-string="):
        text, used = word.partition("=")[2], 1
    elif word.startswith("-S"):
        text, used = word[2:], 1
    else:
        return None
    try:
        return shlex.split(text), used
    except ValueError:  # unbalanced quotes: the words as written
        return text.split(), used
