"""KServe's Hugging Face runtime (``huggingfaceserver``): what its command line loads.

Its parser is stdlib argparse (abbreviations on, ``parse_known_args``) over KServe's model
server options, its own, and, where vLLM is installed (the default image), every vLLM
option. ``load_model`` then:

- takes ``--model_id``, or else downloads ``--model_dir`` (``Storage.download``: a URI
  such as ``s3://`` or ``hf://`` is fetched, ``/mnt/models`` is what the storage
  initializer filled);
- with vLLM (``--backend auto`` or ``vllm``), hands it to vLLM's engine:
  ``args.model = model_id or model_dir``, ``args.revision = model_revision``, and vLLM's
  own options (``--tokenizer``, ``--speculative-config``, ``--hf-config-path``...) apply,
  as do vLLM's environment switches;
- without, loads it with transformers at ``--model_revision`` (``--tokenizer_revision``
  for the tokenizer).

So its command line is read as vLLM's, with the runtime's options renamed to the vLLM ones
they become (red team, session 22: ``--model_i=evil/model`` is argparse's ``--model_id``,
``--model_dir=s3://...`` was never read, nor were vLLM's options).
"""

from __future__ import annotations

import bisect

from modelsec.references.vllm import LONG_OPTIONS

# The runtime's own long options (huggingfaceserver/__main__.py and the KServe model
# server options it inherits, which start with none of the model options' prefixes).
RUNTIME_OPTIONS = (
    "--model_dir",
    "--model_id",
    "--model_revision",
    "--model_name",
    "--tokenizer_revision",
    "--max_length",
    "--max_model_len",
    "--disable_lower_case",
    "--disable_special_tokens",
    "--trust_remote_code",
    "--tensor_input_names",
    "--task",
    "--backend",
    "--return_token_type_ids",
    "--return_probabilities",
    "--disable_log_requests",
    "--max_log_len",
    "--dtype",
)
# Those that take no value (store_true); the others take one.
RUNTIME_FLAGS = frozenset(
    {
        "--disable_lower_case",
        "--disable_special_tokens",
        "--trust_remote_code",
        "--return_token_type_ids",
        "--return_probabilities",
        "--disable_log_requests",
    }
)
# What vLLM's engine reads each of them as (load_model: args.model, args.revision).
AS_VLLM = {
    "--model_id": "--model",
    "--model_revision": "--revision",
    "--tokenizer_revision": "--tokenizer-revision",
}
LOCAL_MODEL_DIR = "/mnt/models"  # the default: what KServe's storage initializer filled
# Where a pin of what vLLM reads goes on this runtime's command line.
SPELLED = {vllm: own for own, vllm in AS_VLLM.items()}


def _resolve(name: str) -> str | None:
    """The runtime option ``name`` spells, exactly or as argparse's unambiguous prefix;
    None for anything else (vLLM's options, which vLLM's reader resolves: ``--tokenizer`` is
    vLLM's own option, not a prefix of ``--tokenizer_revision``)."""
    if name in RUNTIME_OPTIONS:
        return name
    if len(name) < 3 or _abbreviates_vllm(name):
        return None
    matches = [option for option in RUNTIME_OPTIONS if option.startswith(name)]
    return matches[0] if len(matches) == 1 else None


def _abbreviates_vllm(name: str) -> bool:
    """Whether ``name`` is (a prefix of) one of vLLM's options: found by bisection, since
    an admission request may carry a command line of many words."""
    at = bisect.bisect_left(LONG_OPTIONS, name)
    return at < len(LONG_OPTIONS) and LONG_OPTIONS[at].startswith(name)


def as_vllm(args: tuple[str, ...]) -> tuple[str, ...]:
    """The runtime's arguments as vLLM's engine receives them: its model options renamed
    to vLLM's (the last ``--model_id`` wins, as argparse keeps it; without one, a remote
    ``--model_dir`` is the model), its other options dropped with their values, everything
    else as given for vLLM's parser to read."""
    out: list[str] = []
    model_id: str | None = None
    model_dir: str | None = None
    i = 0
    while i < len(args):
        word = args[i]
        i += 1
        if word == "--":  # argparse reads no option after it
            out += args[i - 1 :]
            break
        name, eq, inline = word.partition("=")
        option = _resolve(name) if name.startswith("--") else None
        if option is None:
            out.append(word)  # vLLM's own options, and words for vLLM's reader to judge
            continue
        if option in RUNTIME_FLAGS:
            continue
        if eq:
            value = inline
        elif i < len(args):
            value = args[i]
            i += 1
        else:
            break  # argparse would refuse the line
        if option == "--model_id":
            model_id = value
        elif option == "--model_dir":
            model_dir = value
        elif option in AS_VLLM:
            out += [AS_VLLM[option], value]
        # (the runtime's other options and their values are its own: --model_name m)
    # `if args.model_id:` else Storage.download(args.model_dir): an empty id is no id
    if model_id:
        out += ["--model", model_id]
    elif model_dir and "://" in model_dir:
        out += ["--model", model_dir]
    return tuple(out)
