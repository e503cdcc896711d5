"""The Python package against the `brt` program (same numbers from the same
inputs) and against the definitions of what it offers."""

import pathlib
import threading

import numpy as np
import pytest

import brt
from conftest import ROOT, read_safetensors, run_brt

CHECKPOINT = ROOT / "testdata" / "meliad" / "lstm_dual" / "checkpoint_0"
TOKENS = ROOT / "testdata" / "examples" / "tokens.safetensors"


def test_logits_of_an_official_checkpoint_equal_brt_logits(tmp_path):
    out = tmp_path / "logits.safetensors"
    run_brt("logits", "--model", str(CHECKPOINT), "--input", str(TOKENS), "--output", str(out), "--threads", "1")
    want = read_safetensors(out)["logits"]
    tokens = read_safetensors(TOKENS)["tokens"]
    model = brt.Model(CHECKPOINT, threads=1)
    got = model.logits(tokens)
    assert got.shape == want.shape == (2, 144, model.vocab)
    # Same backend, threads and chunk: the same arithmetic, bit for bit.
    np.testing.assert_array_equal(got, want)
    # One document at a time gives each row of the batch.
    np.testing.assert_array_equal(model.logits(tokens[1]), want[1])


def test_score_equals_brt_eval_json(builtin):
    import json

    path = ROOT / "README.md"
    report = json.loads(run_brt("eval", str(path), "--json", "--threads", "1", "--beyond", "64,4096"))
    want = report["models"][0]["files"][0]
    got = builtin.score(path.read_bytes(), beyond=[64, 4096])
    for key in ["bytes", "tokens", "predictions", "bits_per_byte", "bits_per_token", "nats_per_token"]:
        assert got[key] == want[key], key
    for b in report["models"][0]["beyond"]:
        assert got["beyond"][b["from_position"]] == b["bits_per_token"]


def test_generate_writes_what_brt_generate_writes(builtin):
    want = run_brt("generate", "ROMEO.", "--max-tokens", "40", "--seed", "3", "--threads", "1")
    assert want.endswith("\n")  # the program ends its output with a line break
    assert builtin.generate("ROMEO.", max_tokens=40, seed=3) == want[:-1]
    options = ["--temperature", "1.2", "--top-k", "20", "--min-p", "0.05", "--repetition-penalty", "1.3"]
    want = run_brt("generate", "KING.", "--max-tokens", "30", "--seed", "9", "--threads", "1", *options)
    got = builtin.generate("KING.", max_tokens=30, seed=9, temperature=1.2, top_k=20, min_p=0.05, repetition_penalty=1.3)
    assert got == want[:-1]


def test_stream_gives_the_text_of_generate_in_pieces(builtin):
    text = builtin.generate("HAMLET.", max_tokens=50, seed=1)
    pieces = builtin.stream("HAMLET.", max_tokens=50, seed=1)
    assert pieces.finish is None
    assert "".join(pieces) == text
    assert pieces.finish == "length"
    assert len(pieces.tokens) == 50


def test_a_batch_writes_what_each_prompt_writes_alone(builtin):
    prompts = ["ROMEO.", "KING HENRY. Once more", "O"]
    got = builtin.generate_batch(prompts, max_tokens=25, seed=11, stop=["never"])
    assert got == [builtin.generate(p, max_tokens=25, seed=11 + i, stop=["never"]) for i, p in enumerate(prompts)]


def test_log_probabilities_are_the_models(builtin):
    pieces = builtin.stream("MACBETH.", max_tokens=6, temperature=0.0)
    "".join(pieces)
    ids = np.concatenate([builtin.encode("MACBETH."), pieces.tokens])
    logits = builtin.logits(ids).astype(np.float64)
    rows = logits[len(ids) - 7 : len(ids) - 1]
    log_softmax = rows - np.log(np.exp(rows - rows.max(axis=1, keepdims=True)).sum(axis=1, keepdims=True)) - rows.max(axis=1, keepdims=True)
    want = log_softmax[np.arange(6), pieces.tokens]
    np.testing.assert_allclose(pieces.logprobs, want, rtol=0, atol=1e-5)


def test_a_stop_string_ends_the_text_before_it(builtin):
    text = builtin.generate("HAMLET.", max_tokens=80, seed=1)
    stop = text[10:13]
    stopped = builtin.stream("HAMLET.", max_tokens=80, seed=1, stop=["never written", stop])
    assert "".join(stopped) == text[: text.index(stop)]
    assert stopped.finish == "stop"


def test_a_presence_penalty_removes_the_prompts_tokens_from_the_choice(builtin):
    prompt = "the the the"
    greedy = builtin.generate(prompt, max_tokens=1, temperature=0.0)
    logits = builtin.logits(builtin.encode(prompt))[-1]
    assert greedy == builtin.decode([int(np.argmax(logits))])  # temperature 0 is the argmax
    # Subtracting 1000 from every token of the prompt: the choice is the best other one.
    seen = set(builtin.encode(prompt).tolist())
    penalized = np.where(np.isin(np.arange(builtin.vocab), list(seen)), logits - 1000.0, logits)
    got = builtin.generate(prompt, max_tokens=1, temperature=0.0, presence_penalty=1000.0)
    assert got == builtin.decode([int(np.argmax(penalized))])
    assert got not in "the "


def test_sessions_stream_save_and_restore_exactly(builtin, tmp_path):
    ids = builtin.encode("To be, or not to be, that is the question: " * 4)
    whole = builtin.logits(ids)
    session = builtin.session(chunk=16)
    first = session.feed(ids[:70])
    np.testing.assert_array_equal(np.concatenate([first, session.feed(ids[70:100])]), whole[:100])
    assert session.tokens_seen == 100
    np.testing.assert_array_equal(session.last_logits()[0], whole[99])
    session.save(tmp_path / "s.session")
    restored = [builtin.load_session(tmp_path / "s.session", chunk=16), builtin.session_from_bytes(session.to_bytes(), 16)]
    for other in restored:
        np.testing.assert_array_equal(other.state(), session.state())
    rest = session.feed(ids[100:])
    for other in restored:
        np.testing.assert_array_equal(other.feed(ids[100:]), rest)
    # Past a block boundary, calls of 16 tokens round differently from one call.
    np.testing.assert_allclose(rest, whole[100:], rtol=0, atol=1e-4)
    session.reset()
    np.testing.assert_array_equal(session.feed(ids[:10]), whole[:10])


def test_a_batch_session_feeds_rows_side_by_side(builtin):
    rows = np.stack([builtin.encode("KING. Speak."), builtin.encode("QUEEN. Now.!")])
    session = builtin.session(batch=2)
    both = session.feed(rows)
    assert both.shape == (2, rows.shape[1], builtin.vocab)
    for b in range(2):
        np.testing.assert_array_equal(both[b], builtin.logits(rows[b]))


def test_generation_continues_a_session(builtin):
    session = builtin.session()
    session.feed(builtin.encode("ROMEO."))
    assert builtin.generate("", max_tokens=20, seed=4, session=session) == builtin.generate("ROMEO.", max_tokens=20, seed=4)
    assert session.tokens_seen == len("ROMEO.") + 20


def test_threads_share_a_model_and_get_the_same_numbers(builtin):
    ids = builtin.encode("Now is the winter of our discontent " * 8)
    want = builtin.logits(ids)
    results = [None] * 4

    def work(i):
        results[i] = builtin.logits(ids)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for got in results:
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda m: m.logits([300]), "token id 300"),
        (lambda m: m.logits(np.zeros((0, 5), dtype=np.int64)), "at least one row"),
        (lambda m: m.logits(np.zeros((1, 2, 3), dtype=np.int64)), "1-D or 2-D"),
        (lambda m: m.generate("x", temperature=-1.0), "temperature"),
        (lambda m: m.generate("x", stop=[""]), "stop string"),
        (lambda m: m.generate("", max_tokens=3), "give a prompt"),
        (lambda m: brt.Model("/no/such/model"), "/no/such/model"),
        (lambda m: brt.Model.builtin(backend="abacus"), "unknown backend `abacus`"),
        (lambda m: m.score(12), "str or bytes"),
        (lambda m: m.generate("x", temprature=0.5), "unknown generation option `temprature`"),
        (lambda m: m.generate("x", max_tokens="many"), "`max_tokens`"),
        (lambda m: m.generate_batch(["x"], session=m.session()), "takes no `session`"),
    ],
)
def test_bad_input_raises_brt_error_with_the_programs_message(builtin, call, message):
    with pytest.raises(brt.BrtError, match=message):
        call(builtin)


def test_a_session_of_another_model_is_refused(builtin):
    other = brt.Model(CHECKPOINT, threads=1)
    with pytest.raises(brt.BrtError, match="another model"):
        builtin.generate("x", max_tokens=2, session=other.session())


def test_the_model_describes_itself(builtin):
    assert builtin.backend == "cpu"
    assert builtin.vocab == 260
    assert builtin.config["window"] == 64 and builtin.config["recurrent_layers"] == [2]
    assert len(builtin.fingerprint) == 16
    assert "cpu" in brt.backends() and "reference" in brt.backends()
    assert builtin.decode(builtin.encode("héllo")) == "héllo"
