# Pixel Gateway. `make dev` runs the whole system locally; `make test` runs every check.
# Both set everything up first (scripts/bootstrap: virtualenvs, Java and Node when the machine lacks them,
# npm packages), so they work from a fresh clone with only Python 3.13 (or pyenv) and make installed.
SHELL := /bin/bash
.DEFAULT_GOAL := help
VENV := .venv
PYTHON := $(VENV)/bin/python
# pytest-xdist workers: one per core, and one more, since many tests wait on emulators and subprocesses.
# Tests go out two at a time, the slow ones first (conftest.py), so no slow test starts last.
TEST_WORKERS ?= $(shell echo $$(( $$(nproc) + 1 )))
# Checks the calls of every worker's tests against the template's IAM policies, once they all ran.
SESSION_IAM_CHECK := tests/unit/test_iam_policies.py::test_every_call_the_functions_made_in_this_session_is_granted
export PYTHONPATH := $(CURDIR)/layers/core:$(CURDIR)/functions/graphql_api:$(CURDIR)

.PHONY: help dev services test lint unit build deploy clean bench fuzz

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

dev: ## run the whole system locally on http://127.0.0.1:3000 (PORT= to change)
	@scripts/bootstrap dev
	@exec $(PYTHON) -m devtools.dev

services: ## only DynamoDB Local, moto and the fake Meta, for sam local (SERVICES_HOST=0.0.0.0 on Linux)
	@scripts/bootstrap dev
	@exec $(PYTHON) -m devtools.services

test: ## ruff, mypy and every test (unit, DynamoDB Local, handler events, sam build)
	@scripts/bootstrap test
	@$(MAKE) --no-print-directory lint
	@rm -rf .coverage .coverage.* .local/iam-calls
	$(VENV)/bin/coverage run -m pytest -n $(TEST_WORKERS) --dist load --maxschedchunk 2 --iam-calls-out .local/iam-calls -v --durations=15
	$(VENV)/bin/coverage run -m pytest --iam-calls-in .local/iam-calls -v $(SESSION_IAM_CHECK)
	@$(VENV)/bin/coverage combine --quiet
	$(VENV)/bin/coverage report
	@$(VENV)/bin/coverage json --quiet -o .local/coverage.json
	@$(PYTHON) -m devtools.coverage_summary .local/coverage.json

lint: ## ruff and mypy
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

fuzz: ## fuzz the local stack in production mode: 1000 generated and hostile requests (FUZZ_REQUESTS)
	@scripts/bootstrap dev
	FUZZ_REQUESTS=$${FUZZ_REQUESTS:-1000} FUZZ_SEED=$${FUZZ_SEED:-random} $(VENV)/bin/pytest tests/fuzz -v

bench: ## print the speed figures: aggregator vs naive writes, cold start, warm overhead, AWS requests per operation
	@scripts/bootstrap dev
	$(PYTHON) -m bench

build: ## sam build (SAM CLI from .venv-sam)
	@scripts/bootstrap test
	.venv-sam/bin/sam build

deploy: build ## sam deploy --guided (needs your AWS credentials)
	.venv-sam/bin/sam deploy --guided

clean: ## remove virtualenvs, npm packages, build output (keeps .local data)
	rm -rf $(VENV) .venv-sam node_modules .aws-sam .pytest_cache .mypy_cache .ruff_cache .hypothesis
