# How `sam build` builds chatgate's seven functions (template.yaml: BuildMethod makefile).
#
# SAM runs `make build-<LogicalId>` once per function, one function after another, in the
# repository root (WorkingDirectory) with ARTIFACTS_DIR set. The Makefile it reads is
# sam/<Architecture>/Makefile (ContextPath follows the template's Architecture parameter), which
# sets ARCHITECTURE and includes this file, so a build follows `--parameter-overrides
# Architecture=...` as SAM's own Rust builder did.
#
# The first call builds all seven functions in one `cargo lambda build`: the dependencies and the
# shared crate compile once, and the fat-LTO links (one core each) run side by side. The calls
# after it find cargo's work done and only copy their bootstrap (`sam build --parallel` gains
# nothing: cargo's lock on the target directory runs one build at a time; see LOCK below).
# One invocation unifies the shared crate's features over the seven; that costs no size (the
# release link drops every port a function's code never reaches) and is what bench/ measures.
# `sam build --cached` would miss a change to the shared crate (outside each CodeUri): cargo's own
# freshness is the cache.
#
# By hand: make -f sam/x86_64/Makefile build-TokenFunction ARTIFACTS_DIR=/tmp/token

ifndef ARCHITECTURE
$(error include this file from sam/<architecture>/Makefile, which sets ARCHITECTURE)
endif

# Each function of template.yaml, by logical id, and the package whose binary it ships
# (scripts/sam-check --build checks each bootstrap is the binary of its CodeUri's package).
FUNCTION_TokenFunction := token
FUNCTION_AccessFunction := access
FUNCTION_ConversationsFunction := conversations
FUNCTION_MessageGuardFunction := message-guard
FUNCTION_SharingFunction := sharing
FUNCTION_AdminFunction := admin
FUNCTION_ReconcilerFunction := reconciler
# Their packages, from the lines above only (not from an environment variable named FUNCTION_...).
FUNCTIONS := $(foreach v,$(filter FUNCTION_%,$(.VARIABLES)),$(if $(filter file,$(origin $(v))),$($(v))))

TARGET_arm64 := aarch64-unknown-linux-gnu
TARGET_x86_64 := x86_64-unknown-linux-gnu
TARGET := $(TARGET_$(ARCHITECTURE))
ifeq ($(TARGET),)
$(error unknown ARCHITECTURE '$(ARCHITECTURE)': arm64 or x86_64)
endif
# Each architecture's bootstraps apart, so that building one never hands out the other's.
LAMBDA_DIR := $(or $(CARGO_TARGET_DIR),$(CURDIR)/target)/lambda-$(ARCHITECTURE)
# cargo lambda copies every bootstrap into LAMBDA_DIR on each run, so with `sam build --parallel`
# one function's copy could read a file another's build is writing: where flock(1) exists (Linux),
# the build and each copy hold a lock. Without it, build one function at a time (SAM's default).
LOCK := $(if $(shell command -v flock 2>/dev/null),flock "$(LAMBDA_DIR)/.lock")

# make expands the whole recipe before its first line runs: a logical id this file does not know,
# or no ARTIFACTS_DIR, fails at once, before any build.
build-%:
	$(if $(FUNCTION_$*),,$(error template.yaml's $* has no package here: add FUNCTION_$* to sam/functions.mk))
	$(if $(ARTIFACTS_DIR),,$(error ARTIFACTS_DIR is not set (sam build sets it)))
	mkdir -p "$(LAMBDA_DIR)" "$(ARTIFACTS_DIR)"
	$(LOCK) cargo lambda build --release --locked --target $(TARGET) --lambda-dir "$(LAMBDA_DIR)" $(addprefix --package ,$(FUNCTIONS))
	$(LOCK) cp "$(LAMBDA_DIR)/$(FUNCTION_$*)/bootstrap" "$(ARTIFACTS_DIR)/bootstrap"
