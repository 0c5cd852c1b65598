"""Sessions: tests, bench, train. `nox -s <name> -- <args>` passes args through.

torch: installs RAB_TORCH (default torch==2.13.0, the CPU wheel on our machines) before the
project, whose own requirement is a range. Set RAB_TORCH="" to keep whatever torch the venv
has (e.g. a CUDA build), or RAB_TORCH="torch==X.Y.Z" for another pin.
"""
import os

import nox

nox.options.reuse_venv = "yes"
nox.options.sessions = ["tests"]

TORCH = os.environ.get("RAB_TORCH", "torch==2.13.0")


def install(session, extras="test"):
    if TORCH:
        session.install(TORCH)
    session.install("-e", f".[{extras}]" if extras else ".")


@nox.session
def tests(session):
    """The test suite (benchmarks skipped), with the ray extra so the Ray executor's tests run."""
    install(session, extras="test,ray")
    session.run("python", "-m", "pytest", *session.posargs)


@nox.session
def bench(session):
    """Speed benchmarks: training step (ours vs the plain transcription) and inference latency
    beside executed FLOPs (writes results/<version>/bench/latency.csv). Filter with -- -k ..."""
    install(session)
    args = session.posargs or ["--benchmark-group-by=func,param:seq_len",
                               "--benchmark-columns=median,min,max,rounds",
                               "--benchmark-sort=name"]
    session.run("python", "-m", "pytest", "tests/test_bench_step.py", "tests/test_bench_latency.py",
                "--benchmark-only", *args)


@nox.session
def train(session):
    """One training cell: nox -s train -- --task assoc_recall --distance 126 --model attn."""
    install(session, extras=None)
    session.run("python", "-m", "suite", "train", *session.posargs)


@nox.session
def reproduce(session):
    """The main job: nox -s reproduce -- [--profile smoke|cpu|paper] [--resume RUN_ID] [--device ...]."""
    install(session, extras=None)
    session.run("python", "-m", "suite", "reproduce", *session.posargs)


@nox.session
def regress(session):
    """A router against the original and the baselines: nox -s regress -- --router my_pkg.mod:Class
    [--router-kwargs JSON] [--tier mini|faithful] [--seeds N] [--against RUN_DIR]. Exit 0 not worse, 1 worse."""
    install(session, extras=None)
    session.run("python", "-m", "suite", "regress", *session.posargs)


@nox.session
def audit(session):
    """The audit profile, its decision swaps and AUDIT.md (args go to `python -m suite audit`)."""
    install(session, extras=None)
    session.run("python", "-m", "suite", "audit", *session.posargs)


@nox.session
def gpucheck(session):
    """On a GPU: step time per model at T = 128 / 512 / 2048, share of the matmul peak, paper ETA.
    Keeps the venv's CUDA torch if RAB_TORCH is set empty; exits 2 with one line without a GPU."""
    install(session, extras=None)
    session.run("python", "-m", "suite", "gpucheck", *session.posargs)


@nox.session
def figures(session):
    """Paper figures (PDF + PNG) from results folders: nox -s figures -- [RUN_DIR ...]."""
    install(session, extras=None)
    session.run("python", "-m", "suite", "figures", *session.posargs)
