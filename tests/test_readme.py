"""The README documents what the code does."""

import re
from pathlib import Path

from cds_service.commands.config_cmd import settings_table

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def test_configuration_table_is_current():
    block = README.split("<!-- config-table:start -->")[1].split("<!-- config-table:end -->")[0]
    assert block.strip() == settings_table().strip(), "run: her2-cds config --markdown and paste into README"


def test_ci_runs_the_readme_test_command():
    ci = (Path(__file__).resolve().parent.parent / ".ci" / "run").read_text()
    command = re.search(r"## Run the tests.*?```bash\n(.+?)\n```", README, re.S).group(1).strip()
    assert command in ci


def test_curl_example_request_file_exists():
    for path in re.findall(r"-d @(\S+)", README):
        assert (Path(__file__).resolve().parent.parent / path).is_file(), path


def test_config_command_never_prints_secret_values():
    from cds_service.config import Settings

    table = settings_table(Settings(secret_key="s3cr3t-key-value", metrics_token="m3trics-token-value"))
    assert "s3cr3t-key-value" not in table and "m3trics-token-value" not in table
    assert table.count("(set, hidden)") == 2
