"""The Hugging Face repository layout: auto_map and custom code, Python files, shard
indexes; and Python source files anywhere (python-source format)."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from modelsec.engine import Engine, ScanReport
from modelsec.policy import Outcome, evaluate, load_group
from modelsec.rules.base import EvaluationInput, SourceType

SAFETENSORS = b"\x02\x00\x00\x00\x00\x00\x00\x00{}"


def scan(root: Path) -> ScanReport:
    return Engine().scan_path(root)


def outcome(report: ScanReport) -> Outcome:
    return evaluate(load_group("local-default"), EvaluationInput(report, SourceType.LOCAL)).outcome


def by_threat(report: ScanReport, code: str) -> list:
    return [f for f in report.all_findings() if f.threat == code]


def snapshot(root: Path, config: dict | None = None, **files: str | bytes) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.json").write_text(
        json.dumps(config or {"architectures": ["LlamaForCausalLM"], "model_type": "llama"})
    )
    (root / "model.safetensors").write_bytes(SAFETENSORS)
    for name, content in files.items():
        path = root / name.replace("__", "/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return root


def test_plain_snapshot_is_hf_repo_and_allowed(tmp_path: Path) -> None:
    root = snapshot(
        tmp_path / "m",
        **{
            "tokenizer_config.json": json.dumps({"chat_template": "{{ bos_token }}"}),
            "generation_config.json": "{}",
        },
    )
    report = scan(root)
    assert [r.format for r in report.layout_formats] == ["hf-repo"]
    assert report.all_findings() == []
    assert outcome(report) == Outcome.ALLOWED


def test_directory_without_hf_files_is_not_hf_repo(tmp_path: Path) -> None:
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "model.safetensors").write_bytes(SAFETENSORS)
    assert "hf-repo" not in [r.format for r in scan(tmp_path / "m").layout_formats]


def test_auto_map_names_file_and_class(tmp_path: Path) -> None:
    config = {
        "architectures": ["XForCausalLM"],
        "auto_map": {
            "AutoConfig": "configuration_x.XConfig",
            "AutoModelForCausalLM": "modeling_x.XForCausalLM",
        },
    }
    root = snapshot(
        tmp_path / "m",
        config,
        **{
            "configuration_x.py": "class XConfig:\n    pass\n",
            "modeling_x.py": "import torch\nclass XForCausalLM:\n    pass\n",
        },
    )
    report = scan(root)
    found = by_threat(report, "MS-HF-001")
    assert sorted(f.subject for f in found) == ["configuration_x.XConfig", "modeling_x.XForCausalLM"]
    assert all(f.file.endswith("config.json") and f.rule == "RuntimeCodeExecution" for f in found)
    assert any("modeling_x.py" in f.message and "XForCausalLM" in f.message for f in found)
    # the referenced files are named by their auto_map findings, not reported again
    assert by_threat(report, "MS-HF-003") == []
    assert outcome(report) == Outcome.BLOCKED


def test_tokenizer_auto_map_list_form(tmp_path: Path) -> None:
    tok = {
        "auto_map": {"AutoTokenizer": ["tokenization_x.XTokenizer", None]},
        "chat_template": "{{ bos_token }}",
    }
    root = snapshot(
        tmp_path / "m",
        **{"tokenizer_config.json": json.dumps(tok), "tokenization_x.py": "class XTokenizer: pass\n"},
    )
    assert [f.subject for f in by_threat(scan(root), "MS-HF-001")] == ["tokenization_x.XTokenizer"]


def test_auto_map_to_missing_module_is_still_code(tmp_path: Path) -> None:
    root = snapshot(tmp_path / "m", {"auto_map": {"AutoModel": "modeling_gone.M"}})
    found = by_threat(scan(root), "MS-HF-001")
    assert len(found) == 1 and "not in the snapshot" in found[0].message


def test_auto_map_to_other_repository(tmp_path: Path) -> None:
    root = snapshot(tmp_path / "m", {"auto_map": {"AutoModel": "someone/other-repo--modeling.M"}})
    found = by_threat(scan(root), "MS-HF-002")
    assert [f.subject for f in found] == ["someone/other-repo--modeling.M"]


@pytest.mark.parametrize("ref", ["/tmp/evil.M", "..\\evil.M", "a.b.C", "x--y--z.C", "modeling.123"])
def test_malformed_or_escaping_references(tmp_path: Path, ref: str) -> None:
    root = snapshot(tmp_path / "m", {"auto_map": {"AutoModel": ref}})
    assert by_threat(scan(root), "MS-HF-004")


def test_processor_and_custom_pipelines(tmp_path: Path) -> None:
    config = {"custom_pipelines": {"my-task": {"impl": "pipe_x.MyPipeline", "pt": ["AutoModel"]}}}
    proc = {"auto_map": {"AutoProcessor": "processing_x.XProcessor"}}
    root = snapshot(tmp_path / "m", config, **{"preprocessor_config.json": json.dumps(proc)})
    subjects = sorted(f.subject for f in by_threat(scan(root), "MS-HF-001"))
    assert subjects == ["pipe_x.MyPipeline", "processing_x.XProcessor"]


def test_every_python_file_is_reported(tmp_path: Path) -> None:
    root = snapshot(
        tmp_path / "m",
        **{
            "helpers.py": "def f():\n    return 1\n",
            "sub__train.py": "print(1)\n",
            "weird.py": "match x:\n    case [*_] if (y := 1): pass\nf'{x!r:{w}}'\n",
        },
    )
    report = scan(root)
    assert sorted(f.subject for f in by_threat(report, "MS-HF-003")) == [
        "helpers.py",
        "sub/train.py",
        "weird.py",
    ]
    assert outcome(report) == Outcome.BLOCKED


@pytest.mark.parametrize(
    "text",
    ['__import__("os").system("id")\n', '"""' + "x" * (70 << 10) + '"""\nimport os\nos.system("id")\n'],
    ids=["one-expression", "long-docstring-first"],
)
def test_a_py_file_is_python_source_whatever_its_head_holds(tmp_path: Path, text: str) -> None:
    """Scanned alone, a .py file with no import, def or class line in its head was plain
    text (red team, 2026-12-07): importing it by name runs it all the same."""
    path = tmp_path / "modeling_x.py"
    path.write_text(text)
    result = Engine().scan_file(path)
    assert result.format == "python-source"
    assert [f.threat for f in result.findings] == ["MS-PY-001"]


def test_python_source_summary(tmp_path: Path) -> None:
    (tmp_path / "m").mkdir()
    path = tmp_path / "m" / "modeling_x.py"
    path.write_text(
        "import os, subprocess\nfrom .utils import helper\n\nclass M:\n"
        "    def forward(self):\n        os.system('id')\n        return eval('1')\n"
    )
    result = Engine().scan_file(path)
    assert result.format == "python-source"
    [finding] = result.findings
    assert finding.threat == "MS-PY-001" and finding.rule == "RuntimeCodeExecution"
    assert (
        "imports os, subprocess" in finding.message
        and "os.system" in finding.message
        and "eval" in finding.message
    )
    assert str(finding.severity) == "CRITICAL"


def test_python_detected_by_content_without_name(tmp_path: Path) -> None:
    path = tmp_path / "hubconf"
    path.write_text("import torch\n\ndef model(pretrained=False):\n    return torch.nn.Linear(1, 1)\n")
    assert Engine().scan_file(path).format == "python-source"


def test_python_in_archive(tmp_path: Path) -> None:
    path = tmp_path / "model.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("pkg/.data/version", "3\n")
        zf.writestr("pkg/code/model.py", "import os\nos.system('id')\n")
    found = [f for f in Engine().scan_path(path).all_findings() if f.threat == "MS-PY-001"]
    assert [f.file.rsplit("!", 1)[-1] for f in found] == ["pkg/code/model.py"]


def test_prose_is_not_python(tmp_path: Path) -> None:
    path = tmp_path / "NOTES.md"
    path.write_text("# Notes\n\nThis model class is great. Define it as you like.\n")
    assert Engine().scan_file(path).format != "python-source"


# --- shard indexes ---------------------------------------------------------------------------


def _index(root: Path, weight_map: object, name: str = "model.safetensors.index.json") -> None:
    (root / name).write_text(json.dumps({"metadata": {"total_size": 0}, "weight_map": weight_map}))


def test_complete_shard_index_is_clean(tmp_path: Path) -> None:
    root = snapshot(
        tmp_path / "m",
        **{"model-00001-of-00002.safetensors": SAFETENSORS, "model-00002-of-00002.safetensors": SAFETENSORS},
    )
    _index(root, {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"})
    report = scan(root)
    assert report.all_findings() == []


def test_missing_shard(tmp_path: Path) -> None:
    root = snapshot(tmp_path / "m", **{"model-00001-of-00002.safetensors": SAFETENSORS})
    _index(root, {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"})
    found = by_threat(scan(root), "MS-HF-010")
    assert [f.subject for f in found] == ["model-00002-of-00002.safetensors"]


@pytest.mark.parametrize(
    "shard", ["../other/model.safetensors", "/etc/passwd", "sub/../../x.bin", "C:\\x.bin"]
)
def test_shard_outside_the_repo(tmp_path: Path, shard: str) -> None:
    root = snapshot(tmp_path / "m")
    _index(root, {"a": shard}, "pytorch_model.bin.index.json")
    report = scan(root)
    assert [f.subject for f in by_threat(report, "MS-HF-011")] == [shard]
    assert outcome(report) == Outcome.BLOCKED


def test_shard_through_symlink_out_of_tree(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    root = snapshot(tmp_path / "m")
    (root / "sub").symlink_to(outside, target_is_directory=True)
    _index(root, {"a": "sub/model.safetensors"})
    assert by_threat(scan(root), "MS-HF-011")


def test_shard_in_subfolder_is_fine(tmp_path: Path) -> None:
    root = snapshot(tmp_path / "m", **{"shards__part1.safetensors": SAFETENSORS})
    _index(root, {"a": "shards/part1.safetensors"})
    assert scan(root).all_findings() == []


@pytest.mark.parametrize("weight_map", [None, ["a"], {"a": 3}, {"a": ""}])
def test_malformed_index(tmp_path: Path, weight_map: object) -> None:
    root = snapshot(tmp_path / "m")
    _index(root, weight_map)
    assert by_threat(scan(root), "MS-HF-012")


def test_diffusers_custom_components(tmp_path: Path) -> None:
    root = tmp_path / "pipe"
    (root / "unet").mkdir(parents=True)
    (root / "unet" / "my_unet.py").write_text("class MyUNet:\n    pass\n")
    (root / "model_index.json").write_text(
        json.dumps(
            {
                "_class_name": ["pipeline_mine", "MyPipeline"],
                "_diffusers_version": "0.30.0",
                "unet": ["my_unet", "MyUNet"],
                "vae": ["diffusers", "AutoencoderKL"],
                "text_encoder": ["transformers", "CLIPTextModel"],
                "safety_checker": [None, None],
            }
        )
    )
    report = scan(root)
    found = by_threat(report, "MS-HF-001")
    assert sorted(f.subject for f in found) == ["my_unet.MyUNet", "pipeline_mine.MyPipeline"]
    assert by_threat(report, "MS-HF-003") == []  # unet/my_unet.py is named by its component
    assert [r.format for r in report.layout_formats] == ["hf-repo"]


def test_standard_diffusers_pipeline_is_clean(tmp_path: Path) -> None:
    root = tmp_path / "pipe"
    root.mkdir()
    (root / "model_index.json").write_text(
        json.dumps(
            {
                "_class_name": "StableDiffusionPipeline",
                "unet": ["diffusers", "UNet2DConditionModel"],
                "tokenizer": ["transformers", "CLIPTokenizer"],
                "feature_extractor": [None, None],
            }
        )
    )
    assert scan(root).all_findings() == []


def test_layout_formats_of_several_analysers_coexist(tmp_path: Path) -> None:
    # an HF snapshot that also holds a SavedModel: both layouts must be recorded, so that
    # ApprovedFormats still sees the SavedModel (a model format) next to the hf-repo layout
    root = snapshot(tmp_path / "m", **{"saved_model.pb": b"\x08\x01"})
    formats = sorted(r.format for r in scan(root).layout_formats)
    assert formats == ["hf-repo", "tf-savedmodel"]


# -- red team, 2026-12-07: references loaders take from configs besides auto_map ------------


@pytest.mark.parametrize(
    ("module_type", "code"),
    [
        ("attacker/payload--evil_module.EvilModule", "MS-HF-002"),  # another repository's code
        ("antigravity.webbrowser", "MS-HF-001"),  # any installed module, imported by name
    ],
)
def test_sentence_transformers_module_types_are_code_references(
    tmp_path: Path, module_type: str, code: str
) -> None:
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Evil", "type": module_type},
    ]
    report = scan(snapshot(tmp_path / "m", **{"modules.json": json.dumps(modules)}))
    assert [f.threat for f in report.all_findings()] == [code]
    assert outcome(report) == Outcome.BLOCKED


@pytest.mark.parametrize(
    ("name", "config"),
    [
        (
            "modules.json",
            [{"idx": 0, "name": "0", "path": "/etc", "type": "sentence_transformers.models.Dense"}],
        ),
        ("tokenizer_config.json", {"vocab_file": "/var/run/secrets/kubernetes.io/serviceaccount/token"}),
        ("adapter_config.json", {"peft_type": "LORA", "base_model_name_or_path": "../other-model"}),
    ],
    ids=["module-path", "vocab-file", "adapter-base"],
)
def test_paths_a_loader_takes_from_a_config_stay_inside_the_model(
    tmp_path: Path, name: str, config: object
) -> None:
    report = scan(snapshot(tmp_path / "m", **{name: json.dumps(config)}))
    assert "MS-HF-011" in {f.threat for f in report.all_findings()}
    assert outcome(report) == Outcome.BLOCKED


def test_peft_parent_library_is_an_import(tmp_path: Path) -> None:
    adapter = {
        "peft_type": "LORA",
        "auto_mapping": {"parent_library": "antigravity", "base_model_class": "x"},
    }
    report = scan(snapshot(tmp_path / "m", **{"adapter_config.json": json.dumps(adapter)}))
    assert "MS-HF-001" in {f.threat for f in report.all_findings()}
