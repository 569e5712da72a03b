"""The schema's SDL (graphql_api/schema/*.graphql), and its parse done once by the build.

graphql-core's parser is pure Python: parsing the 8 KB of SDL was 5-8 ms of every cold start, some
15 % of our init. The build (devtools/lambda_build.py, as `sam build` runs it) parses it instead and
leaves the document beside this module, pickled; loading it takes about 1.5 ms, pickle's import
included. The build's parse is used only for the very text it was parsed from and by the
graphql-core version that parsed it: anything else (a changed file, another graphql-core, `make
dev` running the sources, the tests' own SDL) is parsed here, as before.

    python -m graphql_api.sdl    # the build's step: writes PARSED_BY_BUILD
"""

import hashlib
import pickle
from pathlib import Path

import graphql
from graphql import DocumentNode

SCHEMA_DIR = Path(__file__).parent / "schema"
PARSED_BY_BUILD = Path(__file__).with_name("schema.parsed.pickle")


def read_type_defs() -> str:
    # Read as text, not with ariadne.load_schema_from_path, which parses each file only to check it
    # before the whole is parsed again.
    files = sorted(path for path in SCHEMA_DIR.iterdir() if path.suffix == ".graphql")
    return "\n\n".join(path.read_text(encoding="utf-8") for path in files)


def _header(type_defs: str) -> bytes:
    """What a parse is valid for: the text parsed and the parser's version (its node classes)."""
    digest = hashlib.sha256(type_defs.encode()).hexdigest()
    return f"graphql-core {graphql.__version__} sha256 {digest}\n".encode()


def parsed_by_build(type_defs: str, path: Path = PARSED_BY_BUILD) -> DocumentNode | None:
    """The build's parse of `type_defs`, if it parsed this very text with this graphql-core."""
    header = _header(type_defs)
    try:
        written = path.read_bytes()
    except FileNotFoundError:
        return None
    if not written.startswith(header):
        return None
    # The build's own file, deployed with the code (read-only in Lambda): as trusted as the code.
    document: DocumentNode = pickle.loads(written[len(header) :])  # noqa: S301
    return document


def document(type_defs: str) -> DocumentNode:
    """The document of `type_defs`, without source locations (they only point into the SDL, which
    tests/unit/test_executable_schema.py checks)."""
    parsed = parsed_by_build(type_defs)
    return parsed if parsed is not None else graphql.parse(type_defs, no_location=True)


def write_parsed(type_defs: str, path: Path = PARSED_BY_BUILD) -> None:
    parsed = graphql.parse(type_defs, no_location=True)
    path.write_bytes(_header(type_defs) + pickle.dumps(parsed, protocol=pickle.HIGHEST_PROTOCOL))


if __name__ == "__main__":
    write_parsed(read_type_defs())
