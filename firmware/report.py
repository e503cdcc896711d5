"""Reads the firmware's output and the linker map for check.sh.

  report.py board BOARD.LOG DIR
      parses what the firmware printed over semihosting; writes DIR/prompt.u32
      and DIR/logits.f32 (for brt-capi/examples/c/compare.py) and DIR/board.json
  report.py greedy DIR/board.json BRT MODEL
      runs the host's `BRT generate --temperature 0` on the same prompt and
      requires the firmware's text to be the same bytes
  report.py figures DIR/board.json MAP
      flash and RAM from the plan, the linker map and the stack measurement, and
      instructions per token; requires the model to be used in place in flash
      and the static pools to be exactly the plan

Python 3 and its standard library only.
"""
import json
import re
import struct
import subprocess
import sys

# The byte vocabulary: ids 0, 1, 2 are special, byte b is id b + 3.
SPECIAL = 3
BYTES = 256
# memory.x: FLASH at 0 (4 MiB), RAM at 0x20000000 (256 KiB).
FLASH = (0x0000_0000, 4 << 20)
RAM = (0x2000_0000, 256 << 10)


def fail(message):
    sys.exit(f"firmware check: {message}")


def decode(ids):
    """Token ids to bytes as `brt generate` prints them: special ids dropped."""
    return bytes(i - SPECIAL for i in ids if SPECIAL <= i < SPECIAL + BYTES)


def numbers(line, prefix):
    return [int(x) for x in line[len(prefix) :].split()]


def board(log_path, out_dir):
    text = open(log_path, "rb").read().decode("latin-1")
    info = {"logits": 0}
    rows = []
    for line in text.split("\n"):
        if line.startswith("brt firmware: "):
            m = re.search(r"model file (\d+) bytes at (0x[0-9a-f]+).* window (\d+),", line)
            if not m:
                fail(f"unexpected first line: {line!r}")
            info["model_bytes"], info["model_address"] = int(m.group(1)), int(m.group(2), 16)
            info["window"] = int(m.group(3))
            info["banner"] = line
        elif line.startswith("plan: "):
            m = re.fullmatch(r"plan: (\d+) f32 \+ (\d+) u32 for (\d+) token per call; pools: (\d+) f32 \+ (\d+) u32; logits: (\d+) f32", line)
            if not m:
                fail(f"unexpected plan line: {line!r}")
            keys = ["plan_f32s", "plan_u32s", "tokens_per_call", "pool_f32s", "pool_u32s", "logits_f32s"]
            info.update(zip(keys, map(int, m.groups())))
        elif line.startswith("calibration: "):
            m = re.fullmatch(r"calibration: (\d+) instructions in (\d+) ticks", line)
            info["calibration"] = [int(m.group(1)), int(m.group(2))]
        elif line.startswith("prompt:"):
            info["prompt"] = numbers(line, "prompt:")
        elif line.startswith("logits "):
            position, values = line[len("logits ") :].split(":", 1)
            if int(position) != len(rows):
                fail(f"logits of position {position} where {len(rows)} was expected")
            rows.append([int(v, 16) for v in values.split()])
        elif line.startswith("generated:"):
            info["generated"] = numbers(line, "generated:")
        elif line.startswith("smallest greedy lead: "):
            info["lead"] = float(line.split(": ", 1)[1])
        elif line.startswith("ticks prompt:"):
            info["prompt_ticks"] = numbers(line, "ticks prompt:")
        elif line.startswith("ticks generated:"):
            info["generate_ticks"] = numbers(line, "ticks generated:")
        elif line.startswith("stack: "):
            m = re.fullmatch(r"stack: (\d+) bytes at most of (\d+) available", line)
            info["stack_peak"], info["stack_available"] = int(m.group(1)), int(m.group(2))
        elif line.startswith("firmware: error"):
            fail(f"the firmware stopped: {line}")
    needed = ["banner", "plan_f32s", "calibration", "prompt", "generated", "prompt_ticks", "generate_ticks", "stack_peak"]
    missing = [k for k in needed if k not in info]
    if missing:
        fail(f"the firmware's output lacks {', '.join(missing)} (see {log_path})")
    if len(rows) != len(info["prompt"]):
        fail(f"{len(rows)} rows of logits for a prompt of {len(info['prompt'])} tokens")
    vocab = info["logits_f32s"]
    if any(len(r) != vocab for r in rows):
        fail(f"a row of logits does not hold {vocab} values")
    info["logits"] = len(rows)
    with open(f"{out_dir}/prompt.u32", "wb") as f:
        f.write(struct.pack(f"<{len(info['prompt'])}I", *info["prompt"]))
    with open(f"{out_dir}/logits.f32", "wb") as f:
        for r in rows:
            f.write(struct.pack(f"<{len(r)}I", *r))  # the f32 bit patterns as printed
    json.dump(info, open(f"{out_dir}/board.json", "w"))
    print(info["banner"])


def greedy(info_path, brt, model):
    info = json.load(open(info_path))
    prompt = decode(info["prompt"])
    ours = info["generated"]
    # As the firmware: one thread, greedy; it stops at end of text or after
    # as many tokens as the firmware was asked for (64; fewer if it stopped).
    command = [brt, "generate", "--model", model, "--temperature", "0", "--max-tokens", str(max(len(ours), 1)),
               "--backend", "cpu", "--threads", "1", "--prompt", prompt]
    host = subprocess.run(command, check=True, stdout=subprocess.PIPE).stdout
    # `brt generate` ends its text with a line break.
    if host.endswith(b"\n"):
        host = host[:-1]
    text = decode(ours)
    if text != host:
        fail(f"greedy text differs:\n  firmware {text!r}\n  host     {host!r}")
    print(
        f"firmware: greedy text identical to the host's `brt generate --temperature 0`: {len(ours)} tokens after "
        f"{prompt.decode('latin-1')!r}: {text.decode('utf-8', 'replace')!r} (smallest lead of a chosen token "
        f"over the next {info['lead']:.3g})"
    )


def output_sections(map_path):
    """The output sections of an lld map: name -> (VMA, LMA, size)."""
    sections = {}
    for line in open(map_path):
        # Output sections are named right after the alignment; input sections
        # and symbols are indented further.
        m = re.fullmatch(r"\s*([0-9a-f]+)\s+([0-9a-f]+)\s+([0-9a-f]+)\s+\d+ (\.[\w.]+)\n?", line)
        if m:
            sections[m.group(4)] = (int(m.group(1), 16), int(m.group(2), 16), int(m.group(3), 16))
    return sections


def within(region, address, size):
    start, length = region
    return start <= address and address + size <= start + length


def figures(info_path, map_path):
    info = json.load(open(info_path))
    sections = output_sections(map_path)
    size = lambda name: sections.get(name, (0, 0, 0))[2]

    # The model: the input section of `include_model!`'s static, where it lies
    # when running (VMA) and where it is loaded (LMA): both in flash, and the
    # same, is a model used in place; a section copied to RAM would have its
    # VMA there.
    model = None
    for line in open(map_path):
        m = re.match(r"\s*([0-9a-f]+)\s+([0-9a-f]+)\s+([0-9a-f]+)\s+\d+\s+\S*\(\.rodata\.\S*MODEL\S*ALIGNED", line)
        if m:
            model = tuple(int(g, 16) for g in m.groups())
    if model is None:
        fail(f"the model's section is not in {map_path}")
    vma, lma, model_size = model
    if not (vma == lma == info["model_address"] and within(FLASH, vma, model_size)):
        fail(f"the model lies at {vma:#x} (loaded at {lma:#x}), not in place in flash")
    if model_size < info["model_bytes"]:
        fail(f"the model's section holds {model_size} bytes, the file {info['model_bytes']}")

    flash_parts = [".vector_table", ".text", ".rodata", ".data", ".gnu.sgstubs"]
    flash = sum(size(s) for s in flash_parts)
    statics = {s: size(s) for s in (".data", ".bss", ".uninit")}
    static_bytes = sum(statics.values())
    for s in (".data", ".bss", ".uninit"):
        if s in sections and size(s) and not within(RAM, sections[s][0], size(s)):
            fail(f"{s} lies outside RAM")

    plan = 4 * (info["plan_f32s"] + info["plan_u32s"])
    pools = 4 * (info["pool_f32s"] + info["pool_u32s"])
    if pools != plan:
        fail(
            f"the static pools ({info['pool_f32s']} f32 + {info['pool_u32s']} u32) are not the plan "
            f"({info['plan_f32s']} f32 + {info['plan_u32s']} u32): set F32S and U32S in firmware/src/main.rs"
        )
    logits = 4 * info["logits_f32s"]
    ram = static_bytes + info["stack_peak"]
    if ram > RAM[1]:
        fail(f"{ram} bytes of RAM used, more than the {RAM[1]} of memory.x")
    print(
        f"firmware: flash {flash:,} bytes (the model file {info['model_bytes']:,} in .rodata at {vma:#010x}, "
        f"read where it is loaded, not copied to RAM; code {size('.text'):,}, other read-only data "
        f"{size('.rodata') - model_size:,}, vector table {size('.vector_table'):,}, .data image {size('.data'):,})"
    )
    print(
        f"firmware: RAM: plan {plan:,} bytes ({info['plan_f32s']:,} f32 + {info['plan_u32s']} u32 for "
        f"{info['tokens_per_call']} token per call) + logits {logits:,} = {plan + logits:,}; "
        f"linker map: .bss {statics['.bss']:,} + .data {statics['.data']:,} + .uninit {statics['.uninit']:,} "
        f"= {static_bytes:,} (the pools exactly the plan); stack at most {info['stack_peak']:,} (painted); "
        f"in all {ram:,} bytes of the {RAM[1]:,} in memory.x"
    )

    instructions, ticks = info["calibration"]
    per_tick = instructions / ticks
    if abs(per_tick - 40) > 0.1:
        fail(f"{per_tick:.3f} instructions per tick: QEMU did not run with -icount shift=0 at 25 MHz")

    # Tokens in document order; a token at position p completes a block when
    # p + 1 is a multiple of the window (the recurrent layer then updates its state).
    ticks = info["prompt_ticks"] + info["generate_ticks"]
    window = info["window"]
    ends = [t for p, t in enumerate(ticks) if (p + 1) % window == 0]
    inside = [t for p, t in enumerate(ticks) if (p + 1) % window != 0]
    mega = lambda t: f"{t * per_tick / 1e6:.2f} M"
    mean = lambda ts: sum(ts) / len(ts)
    print(
        f"firmware: instructions executed per token (QEMU -icount shift=0: {per_tick:.2f} instructions per SysTick tick, "
        f"by a calibration loop), feeding it and reading its logits: {mega(mean(ticks))} on average over "
        f"{len(ticks)} tokens ({len(info['prompt_ticks'])} of the prompt, {len(info['generate_ticks'])} generated); "
        f"{mega(mean(inside))} inside a block (fewest {mega(min(inside))}, most {mega(max(inside))}), "
        f"{mega(mean(ends))} for the {len(ends)} that complete a block of {window} and update the recurrent state"
        + (f" (fewest {mega(min(ends))}, most {mega(max(ends))})" if ends else "")
    )


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "board":
        board(sys.argv[2], sys.argv[3])
    elif len(sys.argv) == 5 and sys.argv[1] == "greedy":
        greedy(sys.argv[2], sys.argv[3], sys.argv[4])
    elif len(sys.argv) == 4 and sys.argv[1] == "figures":
        figures(sys.argv[2], sys.argv[3])
    else:
        sys.exit(__doc__)
