"""Trains block-recurrent-transformer-pytorch 0.4.4 (lucidrains) at the
configuration closest to brt's `small` config and prints training tokens per
second: forward, loss.backward() and an AdamW step per segment.

Closest configuration: as bench/peer_stream.py (num_tokens 256, dim 256, depth 4,
heads 4, dim_head 64, block_width 64, num_state_vectors 64, one recurrent layer,
the third 1-based as brt's index 2), with max_seq_len = `--segment`.

One step is what `brt train` does in one step: `--batch` rows each take the next
`--segment` tokens of their own stretch of the training text (plus the next token
as the last label), the model runs them block by block with the xl memories and
recurrent states carried from the previous step (detached: truncated
back-propagation through one segment, as the library's README trains), the mean
cross-entropy is back-propagated, the gradient is clipped to global norm 1 (brt's
default) and AdamW (betas 0.9 / 0.98, eps 1e-9, brt's values) updates the
weights. tokens/s = steps * batch * segment / seconds, timed from the first step
to the last, as `brt train` times its loop.
"""

import argparse
import pathlib
import time

import torch
from block_recurrent_transformer_pytorch import BlockRecurrentTransformer


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--segment", type=int, default=256)
    p.add_argument("--data", type=str, required=True, help="a folder of training text files")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = BlockRecurrentTransformer(
        num_tokens=256,
        dim=256,
        depth=4,
        heads=4,
        dim_head=64,
        max_seq_len=args.segment,
        block_width=64,
        num_state_vectors=64,
        recurrent_layers=(3,),
    ).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.98), eps=1e-9, weight_decay=0.0)

    text = b"".join(f.read_bytes() for f in sorted(pathlib.Path(args.data).iterdir()) if f.is_file())
    needed = args.steps * args.segment + 1
    stretch = len(text) // args.batch
    assert stretch >= needed, f"{args.data} is too short for {args.batch} rows of {args.steps} segments"
    rows = torch.tensor(
        [list(text[r * stretch : r * stretch + needed]) for r in range(args.batch)], dtype=torch.long
    )

    memories, states = [], []
    start = time.perf_counter()
    cpu_start = time.process_time()
    losses = []
    for step in range(args.steps):
        s = step * args.segment
        loss, memories, states = model(
            rows[:, s : s + args.segment + 1], xl_memories=memories, states=states, return_loss=True
        )
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
    seconds = time.perf_counter() - start
    cpu = time.process_time() - cpu_start
    assert memories and states, "memories and states must be carried between segments"
    tokens = args.steps * args.batch * args.segment
    print(
        f"peer trained {args.steps} steps of {args.batch} x {args.segment} tokens in {seconds:.3f} s = "
        f"{tokens / seconds:.1f} tokens/s (process CPU time {cpu:.3f} s; loss {losses[0]:.3f} -> {losses[-1]:.3f}; "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads)"
    )


if __name__ == "__main__":
    main()
