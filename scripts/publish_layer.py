"""Publishes a fastric layer zip as a new Lambda layer version, with the AWS CLI.

    python scripts/publish_layer.py layers/fastric-0.1.0-layer-arm64.zip --region eu-west-1 [--public]

The architecture, runtimes and version come from the zip's own `fastric-layer.json`; the layer is
named `fastric-<architecture>` unless `--name` says otherwise. `--public` lets every AWS account
use the new version. Prints the new version's ARN.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any, Optional

MANIFEST_NAME = "fastric-layer.json"


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("zip", type=Path, help="a zip written by `python -m fastric layer build`")
    parser.add_argument("--name", help="layer name (default: fastric-<architecture>)")
    parser.add_argument("--region", help="AWS region (default: the AWS CLI's)")
    parser.add_argument("--public", action="store_true", help="let every AWS account use the new version")
    arguments = parser.parse_args(argv)

    try:
        with zipfile.ZipFile(arguments.zip) as archive:
            manifest = json.loads(archive.read(MANIFEST_NAME))
    except (OSError, KeyError, zipfile.BadZipFile, ValueError) as error:
        sys.stderr.write(f"publish_layer: {arguments.zip} is not a fastric layer zip: {error}\n")
        return 1
    name = arguments.name or f"fastric-{manifest['architecture']}"
    region = ["--region", arguments.region] if arguments.region else []

    published = _aws(
        "lambda",
        "publish-layer-version",
        "--layer-name",
        name,
        "--description",
        f"fastric {manifest['version']} ({manifest['architecture']}): "
        f"AWS_LAMBDA_EXEC_WRAPPER={manifest['exec_wrapper']}",
        "--license-info",
        "Apache-2.0",
        "--zip-file",
        f"fileb://{arguments.zip}",
        "--compatible-architectures",
        *manifest["compatible_architectures"],
        "--compatible-runtimes",
        *manifest["compatible_runtimes"],
        *region,
    )
    if arguments.public:
        _aws(
            "lambda",
            "add-layer-version-permission",
            "--layer-name",
            name,
            "--version-number",
            str(published["Version"]),
            "--statement-id",
            "public",
            "--action",
            "lambda:GetLayerVersion",
            "--principal",
            "*",
            *region,
        )
    sys.stdout.write(f"{published['LayerVersionArn']}\n")
    return 0


def _aws(*arguments: str) -> Any:
    completed = subprocess.run(["aws", *arguments, "--output", "json"], stdout=subprocess.PIPE, check=True)
    return json.loads(completed.stdout)


if __name__ == "__main__":
    sys.exit(main())
