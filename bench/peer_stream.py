"""Streams random byte tokens through block-recurrent-transformer-pytorch 0.4.4
(lucidrains) at the configuration closest to brt's `small` config and prints
tokens per second.

Closest configuration: num_tokens 256 (byte vocabulary; brt uses 260 ids),
dim 256, depth 4, heads 4, dim_head 64, block_width 64, num_state_vectors 64, one
recurrent layer (the third, 1-based, as brt's index 2). The document is fed in
segments of `--segment` tokens (max_seq_len), carrying the returned xl memories
and states from segment to segment, the way the library streams long inputs; each
segment is processed block by block inside. Inference only: eval mode,
torch.no_grad, `--threads` intra-op threads.
"""

import argparse
import time

import torch
from block_recurrent_transformer_pytorch import BlockRecurrentTransformer


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--tokens", type=int, default=8192)
    p.add_argument("--segment", type=int, default=256)
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
    ).eval()
    tokens = torch.randint(0, 256, (1, args.tokens))
    with torch.no_grad():
        # Warm-up: one segment.
        model(tokens[:, : args.segment])
        memories, states = [], []
        start = time.perf_counter()
        cpu_start = time.process_time()
        for s in range(0, args.tokens, args.segment):
            _, memories, states = model(tokens[:, s : s + args.segment], xl_memories=memories, states=states)
        seconds = time.perf_counter() - start
        cpu = time.process_time() - cpu_start
    assert memories and states, "memories and states must be carried between segments"
    print(f"peer {args.tokens} tokens in {seconds:.3f} s = {args.tokens / seconds:.1f} tokens/s "
          f"(process CPU time {cpu:.3f} s; torch {torch.__version__}, {torch.get_num_threads()} threads)")


if __name__ == "__main__":
    main()
