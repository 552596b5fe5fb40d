# The README's two commands live in scripts/; these targets are shortcuts.
.PHONY: demo test lint bench setup
setup:
	bash scripts/setup.sh
demo:
	bash scripts/demo.sh
test:
	bash scripts/test.sh
lint:
	.venv/bin/ruff check src tests && .venv/bin/mypy src
