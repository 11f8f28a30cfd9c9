"""`make bench`'s table: every row with a target says whether it met it, and why not when it did not."""

from bench.benchmark import layouts, met


def test_each_row_with_a_target_says_whether_it_met_it_and_why_not():
    assert met(("split epoch / plain epoch", "1.050", "4.1 s vs 3.9 s", "<= 1.10")) == "yes"
    assert met(("tcp epoch / inproc epoch", "1.280", "", "<= 1.10")).startswith("no: client and server processes share the cores")
    assert met(("nvfp4", "4.9%", "", "<= 5%")) == "yes"
    assert met(("fp8_e4m3 +zstd", "9.2%", "", "<= 5%")) == "no: zstd's own compression of the payload (docs/findings.md)"
    assert met(("sweep, 1 worker x 2 threads", "0.93x", "", ">= 1.00x")).startswith("no: this machine's cores")
    assert met(("sweep, 1 worker x 2 threads", "1.20x", "", ">= 1.00x")) == "yes"
    assert met(("host syncs per training step", "0.00", "", "0")) == "yes"
    assert met(("CACHED epoch / FULL epoch", "0.400", "", "")) == ""
    assert met(("vgg11 split/plain time per image", "needs CUDA", "device is cpu", "")) == ""


def test_the_sweep_layouts_use_every_core_and_start_with_the_default():
    assert layouts(2) == [(2, 1), (1, 2)]
    assert layouts(8) == [(8, 1), (1, 8), (2, 4)]
    assert layouts(1) == [(1, 1)]
