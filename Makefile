# The two commands of the README. Each sets everything up first (./setup.sh, idempotent).
.PHONY: demo test bench setup clean

demo: setup
	.venv/bin/kiosk demo

test: setup
	.venv/bin/python -m pytest

bench: setup
	.venv/bin/python bench/run.py

setup:
	./setup.sh

clean:
	rm -rf .venv build *.egg-info demo-screenshots
