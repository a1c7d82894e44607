# courier: `make demo` runs the demo, `make test` runs every test in every language.
SHELL := /bin/bash
# Outside the clone, so repeated CI runs and fresh clones reuse compiled dependencies.
export CARGO_TARGET_DIR ?= $(HOME)/.cache/courier/target

bench:
	@COURIER_AMQP_URL="$$(bash tests/scripts/ensure-rabbitmq.sh)" cargo run -q --release -p courier-bench -- all --json bench/latest.json

# courier from Python, Node and Kotlin against httpx, requests, aiohttp, pika, aio-pika,
# undici, amqplib, OkHttp and the RabbitMQ Java client in one run (bench/peers/run.sh;
# release builds, an nginx upstream, the local RabbitMQ).
bench-peers:
	@bash bench/peers/run.sh

.PHONY: bench bench-peers demo soak test test-rust test-python test-node test-cluster test-kotlin test-swift interop dist test-dist fmt lint rabbitmq

# The embedded default: an in-process memory:// broker and an in-process HTTP upstream, no
# root and nothing installed. `make demo COURIER_AMQP_URL=amqp://...` runs it against RabbitMQ.
demo:
	@cargo run -q -p courierkit --example demo

test:
	bash tests/scripts/test-all.sh

# test-cluster: the three-node RabbitMQ cluster's scenarios (it starts the cluster, then stops it).
test-rust test-python test-node test-cluster test-kotlin test-swift:
	bash tests/scripts/test-all.sh $(@:test-%=%)

# Ten minutes of mixed HTTP calls, publishes, consumes and RPCs on the three-node cluster,
# a fault every 2 s and a node restart each minute (core/tests/cluster/soak.rs); prints RSS
# at minute 1 and at the end, lost and duplicated messages, leaked RPC entries.
# COURIER_SOAK_SECS=120 shortens it; the cluster is started when it is not running.
soak:
	COURIER_CLUSTER_URLS="$$(bash tests/scripts/ensure-rabbitmq-cluster.sh)" cargo test --release -p courierkit --test cluster -- --ignored --exact soak::soak --nocapture

# Every artifact users install, into dist/ (scripts/dist.sh): wheel + sdist, npm tarballs,
# JAR with the native library, the .crate, and the mobile inputs (docs/mobile.md).
dist:
	bash scripts/dist.sh

# Each artifact from dist/ installed in a clean place with cargo off PATH, quick starts run.
test-dist:
	bash scripts/test-dist.sh

# Every language's agent against every other's over RabbitMQ, and against pika (tests/interop).
interop:
	bash tests/scripts/test-all.sh interop

fmt:
	cargo fmt --all
	.venv/bin/ruff format python

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	cd python && ../.venv/bin/ruff check .

rabbitmq:
	@bash tests/scripts/ensure-rabbitmq.sh
