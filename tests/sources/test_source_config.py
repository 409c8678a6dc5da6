"""Source configuration parsing (as the operator passes it from a Secret) and redaction."""

from __future__ import annotations

import logging

import pytest

from modelsec.sources.config import HuggingFaceConfig, S3Config, parse_config
from modelsec.sources.credentials import RedactingFilter, redact, redact_url, secrets_in_use
from modelsec.sources.errors import SourceFailure


def test_secret_style_values_and_aliases() -> None:
    cfg = parse_config(
        S3Config,
        {
            "AWS_ACCESS_KEY_ID": "AKIAEXAMPLE0001",
            "AWS_SECRET_ACCESS_KEY": "secret-value-0001",
            "endpoint": "http://minio:9000",
            "addressingStyle": "Path",
            "timeout": "5",
            "allowPatterns": "*.safetensors,\n*.json",
            "ignorePatterns": '["a/*"]',
            "anonymous": "false",
            "maxRetries": "2",
            "region": "",
        },
        "S3",
    )
    assert cfg.access_key_id.get_secret_value() == "AKIAEXAMPLE0001"
    assert cfg.addressing_style == "path" and cfg.timeout == 5 and cfg.max_retries == 2
    assert cfg.allow_patterns == ["*.safetensors", "*.json"] and cfg.ignore_patterns == ["a/*"]
    assert cfg.region is None  # empty values are absent values
    assert "secret-value-0001" not in repr(cfg)  # SecretStr
    hf = parse_config(HuggingFaceConfig, {"HF_TOKEN": "hf_abcdefgh"}, "HuggingFace")
    assert hf.token.get_secret_value() == "hf_abcdefgh" and "hf_abcdefgh" not in repr(hf)


def test_errors_name_keys_not_values() -> None:
    with pytest.raises(SourceFailure) as err:
        parse_config(
            HuggingFaceConfig, {"token": "hf_good_token_1", "accessKeyId": "AKIASHOULDNOTSHOW"}, "HuggingFace"
        )
    assert err.value.code == "MS-SRC-002"
    assert "accessKeyId: unknown key" in err.value.message
    assert "AKIASHOULDNOTSHOW" not in err.value.message and "hf_good_token_1" not in err.value.message
    with pytest.raises(SourceFailure) as bad:
        parse_config(S3Config, {"addressingStyle": "sideways", "secretAccessKey": 12345678}, "S3")
    assert "addressingStyle" in bad.value.message and "12345678" not in bad.value.message


def test_redaction_while_in_use() -> None:
    assert redact("token hf_tempsecret99") == "token hf_tempsecret99"
    with secrets_in_use(["hf_tempsecret99", None, "short"]):
        assert redact("token hf_tempsecret99 here") == "token *** here"
        assert redact("short") == "short"  # too short to redact safely
    assert redact("token hf_tempsecret99") == "token hf_tempsecret99"
    assert redact_url("https://user:pass@hub.internal/x") == "https://***@hub.internal/x"
    assert redact_url("https://hub.internal") == "https://hub.internal"


def test_log_filter_rewrites_client_library_records(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with secrets_in_use(["session-token-secret-1"]):
        logging.getLogger("botocore.endpoint").debug(
            "headers %s", {"X-Amz-Security-Token": "session-token-secret-1"}
        )
    assert "session-token-secret-1" not in caplog.text and "***" in caplog.text
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "plain %s", ("text",), None)
    assert RedactingFilter().filter(record) and record.getMessage() == "plain text"
