"""Every ```python block of README.md runs as written, and passes ruff.

How the blocks run: the blocks of one ``##`` section (with its ``###`` subsections) share a
working directory. A block whose first line is ``# NAME.py`` is saved there under that name
before any block runs, so the section's other blocks can import it. Then each block runs, in
order, as a program of its own (``python NAME.py``) and must exit 0 without a traceback, having
printed what its ``print(...)  # TEXT`` comments say. A block that calls ``app.run()`` is a
worker: it runs in the background from the moment its app started until the rest of the
section ran, then gets SIGTERM and must drain and exit 0.

Every block runs with ``BROKER_MODE=redis`` on the Redis at ``TEST_REDIS_URL`` under a fresh
``QUEUE_PREFIX`` whose keys are deleted after. A block that must not run is marked in the README
by an ``<!-- not run: reason -->`` line right above its fence; MAX_NOT_RUN bounds them.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
import uuid
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.programs import Worker, drop_prefix, program_env, run_program, serve
from tests.redis_servers import require_redis_server, shared_redis_ok, shared_redis_url

README = Path(__file__).resolve().parent.parent / "README.md"
MAX_NOT_RUN = 0  # every block runs today; raise only with a reason in the README
NOT_RUN = re.compile(r"<!--\s*not run:\s*(?P<reason>.+?)\s*-->")
# ``print(...)  # TEXT``: TEXT is (part of) what the program prints.
PRINTS = re.compile(r"^\s*print\(.*\)\s+#\s*(?P<text>.+?)\s*$", re.MULTILINE)
FILE_NAME = re.compile(r"#\s*(?P<name>[A-Za-z_]\w*\.py)")
RUFF_RULES = "E,F,W,I,B,UP,C90,SIM,RUF,ASYNC,RET"
PYTHON_FENCES = {"python", "py"}
SUSPECT_FENCES = {"python3", "py3", "pycon", "ipython", "Python"}


@dataclass
class Block:
    """One ```python block: its first line in README.md, its code, why it is not run (if so)."""

    line: int
    code: str
    not_run: str | None = None

    @property
    def file_name(self) -> str:
        """The ``# NAME.py`` of its first line, else a name of its own."""
        first = self.code.split("\n", 1)[0].strip()
        match = FILE_NAME.fullmatch(first)
        return match["name"] if match else f"readme_line_{self.line}.py"

    @property
    def prints(self) -> list[str]:
        """What its ``print(...)  # TEXT`` lines say it prints."""
        return PRINTS.findall(self.code)

    @property
    def serves(self) -> bool:
        """It runs a worker until a signal."""
        return "app.run()" in self.code


@dataclass
class Section:
    title: str
    blocks: list[Block] = field(default_factory=list)


def read_sections(text: str) -> tuple[list[Section], list[str]]:
    """README's ``##`` sections with their python blocks, and the info strings of every fence."""
    sections = [Section("(top)")]
    fences: list[str] = []
    lines = text.split("\n")
    above = ""  # the last non-blank line outside a fence
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("```"):
            info = line[3:].strip()
            fences.append(info)
            end = i + 1
            while end < len(lines) and not lines[end].startswith("```"):
                end += 1
            if info in PYTHON_FENCES:
                mark = NOT_RUN.fullmatch(above.strip())
                code = "\n".join(lines[i + 1 : end]) + "\n"
                block = Block(i + 1, code, mark["reason"] if mark else None)
                sections[-1].blocks.append(block)
            above, i = "", end + 1
            continue
        if line.startswith("## "):
            sections.append(Section(line[3:].strip()))
        if line.strip():
            above = line
        i += 1
    return [s for s in sections if s.blocks], fences


SECTIONS, FENCES = read_sections(README.read_text(encoding="utf-8"))


def test_the_readme_blocks_are_found() -> None:
    blocks = [b for s in SECTIONS for b in s.blocks]
    assert len(blocks) >= 6, "README.md has fewer python blocks than expected: parser broken?"
    assert not SUSPECT_FENCES & set(FENCES), "spell python fences ```python so they are run"
    names = [b.file_name for s in SECTIONS for b in s.blocks]
    assert len(names) == len(set(names)), f"two blocks save the same file: {names}"


def test_few_blocks_are_exempt() -> None:
    exempt = [f"line {b.line}: {b.not_run}" for s in SECTIONS for b in s.blocks if b.not_run]
    assert len(exempt) <= MAX_NOT_RUN, f"README blocks marked not run: {exempt}"


def test_the_block_parser_reads_names_marks_and_sections() -> None:
    text = "\n".join(
        [
            "# title",
            "## One",
            "```python",
            "# models.py",
            "x = 1",
            "```",
            "<!-- not run: needs a GPU -->",
            "",
            "```python",
            "import models",
            "```",
            "```bash",
            "## not a heading",
            "```",
            "## Two",
            "```py",
            "print(app.info())  # AppInfo(",
            "asyncio.run(app.run())",
            "```",
        ]
    )
    sections, fences = read_sections(text)
    assert [s.title for s in sections] == ["One", "Two"]
    first, second = sections[0].blocks
    assert (first.file_name, first.not_run, first.line) == ("models.py", None, 3)
    assert second.not_run == "needs a GPU"
    assert second.file_name == "readme_line_9.py"
    assert sections[1].blocks[0].serves
    assert sections[1].blocks[0].prints == ["AppInfo("]
    assert first.prints == []
    assert fences == ["python", "python", "bash", "py"]


def check_ran(block: Block, where: str, code: int, out: str) -> None:
    """It exited 0, printed no traceback, and printed what its comments say."""
    assert code == 0, f"{where} exited {code}:\n{out}"
    assert "Traceback" not in out, f"{where} printed a traceback:\n{out}"
    for text in block.prints:
        assert text in out, f"{where} did not print {text!r}:\n{out}"


def test_the_blocks_are_lint_clean_and_formatted(tmp_path: Path) -> None:
    """ruff, as a user's project would run it: ``broker`` third-party, ``models.py`` local."""
    if importlib.util.find_spec("ruff") is None:
        pytest.skip("ruff is not installed")
    for block in (b for s in SECTIONS for b in s.blocks):
        (tmp_path / block.file_name).write_text(block.code, encoding="utf-8")
    ruff = [sys.executable, "-m", "ruff"]
    options = ["--isolated", "--no-cache", "--line-length", "100", "--target-version", "py311"]
    for command in (["check", "--select", RUFF_RULES], ["format", "--check", "--diff"]):
        done = subprocess.run(
            [*ruff, *command, *options, "."],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, (
            f"ruff {command[0]} on README blocks:\n{done.stdout}{done.stderr}"
        )


@pytest.mark.parametrize("section", SECTIONS, ids=[s.title for s in SECTIONS])
async def test_readme_section_runs(section: Section, tmp_path: Path) -> None:
    require_redis_server()
    url = shared_redis_url()
    if not shared_redis_ok(url):
        pytest.fail(f"no Redis answers at {url}")
    prefix = f"test-readme-{uuid.uuid4().hex[:12]}"
    env = program_env(BROKER_MODE="redis", REDIS_URL=url, QUEUE_PREFIX=prefix)
    blocks = [b for b in section.blocks if b.not_run is None]
    for block in blocks:
        (tmp_path / block.file_name).write_text(block.code, encoding="utf-8")
    try:
        async with AsyncExitStack() as stack:
            workers: list[tuple[Block, Worker]] = []
            for block in blocks:
                if block.serves:
                    serving = serve([block.file_name], tmp_path, env)
                    workers.append((block, await stack.enter_async_context(serving)))
                    continue
                code, out = await run_program([block.file_name], tmp_path, env)
                check_ran(block, f"README.md line {block.line} ({block.file_name})", code, out)
            for block, worker in workers:
                code = await worker.stop()
                check_ran(block, f"{worker.name} stopped by SIGTERM", code, worker.output)
    finally:
        drop_prefix(url, prefix)
