"""Regenerate tests/data/golden_codec.json from tests/codec_reference.py.

    python3 tests/data/make_golden_codec.py          # rewrite the file
    python3 tests/data/make_golden_codec.py --check  # exit 1 if the file is out of date

Each case is a value of `codec_values.CATALOGUE` (by name) with its binary encoding (hex) and its JSON
text; encodings longer than 2048 bytes are stored as a length and a sha256. The golden file pins the
codec (binary version 1, "m" in the envelope): if an encoding changes, the format changed, so bump the
version (do not just regenerate). Adding cases is fine. Run with numpy and pydantic installed.
"""

import json
import os
import sys

DATA_DIR = os.path.dirname(os.path.abspath(__file__))
TESTS_DIR = os.path.dirname(DATA_DIR)
sys.path.insert(0, TESTS_DIR)

import codec_reference  # noqa: E402
import codec_values  # noqa: E402  (always as top-level `codec_values`: its type names are in the encodings)


def build() -> dict:
    cases = []
    for name, value in codec_values.CATALOGUE.items():
        cases.append({"name": name, **codec_values.golden_entry(value, codec_reference.encode_binary,
                                                                  codec_reference.encode_json)})
    return {
        "codec_version": 1,
        "generator": "tests/data/make_golden_codec.py (from tests/codec_reference.py and tests/codec_values.py)",
        "cases": cases,
    }


def main() -> int:
    text = json.dumps(build(), indent=1, ensure_ascii=True) + "\n"
    if "--check" in sys.argv:
        with open(codec_values.GOLDEN_PATH, encoding="utf-8") as fh:
            if fh.read() != text:
                print("golden_codec.json is out of date", file=sys.stderr)
                return 1
        return 0
    with open(codec_values.GOLDEN_PATH, "w", encoding="utf-8") as fh:
        fh.write(text)
    print(f"wrote {len(codec_values.CATALOGUE)} cases to {codec_values.GOLDEN_PATH}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
