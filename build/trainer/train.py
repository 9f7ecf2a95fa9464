"""A small data-parallel training run for Verdant's real-node tests, launched by torchrun.

torchrun reads the rendezvous from the env Verdant injects (PET_NNODES, PET_NPROC_PER_NODE,
PET_NODE_RANK, PET_MASTER_ADDR, PET_MASTER_PORT; for an elastic job PET_NNODES=MIN:MAX and
the c10d rendezvous, PET_RDZV_*) and gives each worker RANK, WORLD_SIZE, MASTER_ADDR and
MASTER_PORT. The workers train a tiny linear model with
DistributedDataParallel over gloo on CPU and print one line per step:

    world_size=2 rank=0 step=3 loss=0.412345

Settings (env):
  STEPS                  steps to train in all (default 20)
  STEP_SECONDS           pause after each step, to keep a run alive (default 0)
  CHECKPOINT_DIR         where rank 0 keeps checkpoint.pt (default: no checkpoints)
  INIT_TIMEOUT_SECONDS   how long the workers wait for each other (default 300)

Checkpoints: rank 0 saves {step, model, optimizer} to $CHECKPOINT_DIR/checkpoint.pt (the
last completed step; prints `checkpoint saved step=S`) when it gets SIGTERM, when a step
fails (a peer left mid-step) and when the run ends. On start, rank 0 loads it if present,
every rank prints `resumed from step S`, and training continues at step S+1 (DDP copies
rank 0's weights to the others).

Elastic runs: when the membership changes, torchrun stops the workers with SIGTERM and
starts them again in the new world, and they resume from the checkpoint. A shrink can end
a peer first, so a survivor's step fails in gloo instead, with no SIGTERM: rank 0 saves
then too, and torchrun restarts the workers. Under the c10d rendezvous rank 0 may be on
any replica, so CHECKPOINT_DIR must be shared by all of them.

Exit codes: 0 done or stopped by SIGTERM after saving; 1 a step failed (saved first);
2 bad settings; 3 the checkpoint could not be written or read. torchrun (the container's
PID 1) passes SIGTERM on to the workers and itself exits 1 with "SignalException: Process 1
got signal: 15" once they end.
"""

import os
import signal
import sys
import threading
import time
import traceback

# Block SIGTERM before torch starts its threads, so they inherit the mask and only the
# saver thread below takes it: the main thread may sit in a collective (gloo waits for a
# peer that has already stopped), where a Python signal handler would never run.
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})

from datetime import timedelta  # noqa: E402

import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402
from torch.nn.parallel import DistributedDataParallel  # noqa: E402

EXIT_STEP_FAILED = 1
EXIT_BAD_SETTINGS = 2
EXIT_CHECKPOINT = 3


def env_number(name, default, kind):
    raw = os.environ.get(name, "")
    if raw == "":
        return default
    try:
        value = kind(raw)
    except ValueError:
        value = -1
    if value < 0:
        print(f"train.py: {name}={raw!r} must be a number >= 0", file=sys.stderr, flush=True)
        sys.exit(EXIT_BAD_SETTINGS)
    return value


def say(line):
    print(line, flush=True)


class Checkpoints:
    """The last completed step's state, and where rank 0 writes it."""

    def __init__(self, directory, rank):
        self.path = os.path.join(directory, "checkpoint.pt") if directory else None
        self.writes = self.path is not None and rank == 0
        self.lock = threading.Lock()
        self.snapshot = None

    def load(self):
        if self.path is None or not os.path.exists(self.path):
            return None
        try:
            return torch.load(self.path)
        except Exception as e:  # a truncated or foreign file: say which, and stop
            say(f"train.py: cannot read checkpoint {self.path}: {e}")
            sys.exit(EXIT_CHECKPOINT)

    def remember(self, step, model, optimizer):
        if not self.writes:
            return
        state = {
            "step": step,
            "model": {k: v.detach().clone() for k, v in model.state_dict().items()},
            "optimizer": optimizer.state_dict(),
        }
        with self.lock:
            self.snapshot = state

    def save(self):
        """Writes the last snapshot atomically; returns its step, or None if none yet."""
        if not self.writes:
            return None
        with self.lock:
            state = self.snapshot
            if state is None:
                return None
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            tmp = self.path + ".tmp"
            torch.save(state, tmp)
            os.replace(tmp, self.path)
            return state["step"]


def stop_on_sigterm(checkpoints, rank):
    """Waits for SIGTERM in its own thread, saves, and ends the process."""

    def wait():
        signal.sigwait({signal.SIGTERM})
        try:
            step = checkpoints.save()
        except Exception as e:
            say(f"train.py: rank={rank} got SIGTERM; checkpoint failed: {e}")
            os._exit(EXIT_CHECKPOINT)
        if step is None:
            say(f"train.py: rank={rank} got SIGTERM; nothing to save")
        else:
            say(f"checkpoint saved step={step} path={checkpoints.path}")
        os._exit(0)

    threading.Thread(target=wait, name="sigterm", daemon=True).start()


def main():
    steps = env_number("STEPS", 20, int)
    step_seconds = env_number("STEP_SECONDS", 0.0, float)
    init_timeout = env_number("INIT_TIMEOUT_SECONDS", 300, int)
    rank = int(os.environ.get("RANK", "0"))
    checkpoints = Checkpoints(os.environ.get("CHECKPOINT_DIR", ""), rank)
    stop_on_sigterm(checkpoints, rank)

    dist.init_process_group("gloo", timeout=timedelta(seconds=init_timeout))
    world_size = dist.get_world_size()
    rank = dist.get_rank()

    torch.manual_seed(0)
    model = torch.nn.Linear(16, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    start = torch.zeros(1, dtype=torch.int64)
    if rank == 0:
        state = checkpoints.load()
        if state is not None:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            start[0] = state["step"]
    dist.broadcast(start, src=0)
    done = int(start[0])
    if done > 0:
        say(f"resumed from step {done}")
    ddp = DistributedDataParallel(model)

    # Each rank sees its own shard of one fixed regression problem.
    generator = torch.Generator().manual_seed(1000 + rank)
    true_weights = torch.arange(16, dtype=torch.float32) / 16
    say(f"world_size={world_size} rank={rank} starting at step {done + 1} of {steps}")
    try:
        for step in range(done + 1, steps + 1):
            inputs = torch.randn(32, 16, generator=generator)
            targets = inputs @ true_weights.unsqueeze(1)
            loss = torch.nn.functional.mse_loss(ddp(inputs), targets)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            checkpoints.remember(step, model, optimizer)
            say(f"world_size={world_size} rank={rank} step={step} loss={loss.item():.6f}")
            if step_seconds:
                time.sleep(step_seconds)
    except Exception as e:
        # A peer left mid-step (gloo reports the closed connection): keep the last
        # completed step, then fail, and torchrun restarts the workers from it.
        say(f"train.py: rank={rank} step failed: {e}")
        try:
            saved = checkpoints.save()
        except Exception as save_error:
            say(f"train.py: rank={rank} checkpoint failed: {save_error}")
            os._exit(EXIT_CHECKPOINT)
        if saved is not None:
            say(f"checkpoint saved step={saved} path={checkpoints.path}")
        # Without tearing gloo down: its peers are gone.
        traceback.print_exc()
        sys.stderr.flush()
        os._exit(EXIT_STEP_FAILED)

    saved = checkpoints.save()
    if saved is not None:
        say(f"checkpoint saved step={saved} path={checkpoints.path}")
    dist.barrier()
    say(f"world_size={world_size} rank={rank} done steps={steps}")
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
