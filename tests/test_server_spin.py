"""soa.server.spin: the hub polls for a moment before it sleeps, its window grows to cover a
caller's gap and shrinks when the hub sleeps long, and it stops spinning when it does not pay.
On the real gevent hub, and in a real server process."""

import os
import time

import gevent
from gevent import get_hub

from fixtures.server_support import client, echo_config, echo_idl
from soa.config import load_config
from soa.server.spin import MAX_SKIP, PREEMPTED, SHORTEST, Spin, for_hub
from soa.testing.poll import wait_until
from soa.testing.processes import ServiceProcess

WINDOW = 0.002


def spin_to_the_end(spin):
    """Begin a spin (the caller made sure it is not skipped) and wait until it ends."""
    spin.before_wait()
    assert spin.spinning
    began = time.perf_counter()
    wait_until(lambda: not spin.spinning, timeout=5, interval=0.001, message="the spin ends")
    return time.perf_counter() - began


def skipped(spin, times):
    """Whether the next ``times`` waits do not spin."""
    for _ in range(times):
        spin.before_wait()
        if spin.spinning:
            return False
    return True


def fixed(window, preempted=1.0):
    """A spin whose window cannot grow (its shortest is its longest); a machine busy with other
    tests takes the core now and then, which is no preemption that these tests are about."""
    return Spin(get_hub().loop, window, shortest=window, preempted=preempted)


def test_a_spin_polls_for_its_window_then_lets_the_hub_sleep():
    spin = fixed(WINDOW)
    assert not spin.spinning
    assert spin_to_the_end(spin) >= WINDOW


def window_becomes(spin, expected):
    wait_until(lambda: spin.window == expected, timeout=5, interval=0.001,
               message=f"the window becomes {expected}")


def test_the_window_starts_short_and_doubles_while_the_hub_wakes_soon_after_a_spin():
    spin = Spin(get_hub().loop, 0.1, shortest=0.002, preempted=1.0)  # CI's jitter is no preemption
    assert spin.window == 0.002
    for expected in (0.004, 0.008, 0.016, 0.032, 0.064, 0.1):  # never past the longest
        spin_to_the_end(spin)  # nothing served; the hub then wakes within ms (the poll's timer)
        window_becomes(spin, expected)  # and a near miss is no waste: the next wait spins


def test_a_wasted_spin_at_the_longest_or_before_a_long_sleep_resets_the_window_and_backs_off():
    spin = Spin(get_hub().loop, 0.1, shortest=0.002, preempted=1.0)
    spin.window = 0.1
    spin_to_the_end(spin)  # the hub wakes within ms: after the longest window, though
    window_becomes(spin, 0.002)
    assert skipped(spin, 1)
    spin.window = 0.008
    spin.before_wait()
    assert spin.spinning
    # Polled every 0.15 s: between two looks the hub sleeps past the longest window.
    wait_until(lambda: not spin.spinning and spin.window == 0.002, timeout=5, interval=0.15,
               message="the window goes back after a long sleep")
    assert skipped(spin, 2)  # the second wasted spin in a row


def test_a_burst_that_ends_sets_the_window_back_without_skipping():
    spin = Spin(get_hub().loop, 0.1, shortest=0.002, preempted=1.0)
    spin.window = 0.05
    spin.before_wait()
    gevent.spawn_later(0.005, spin.before_wait)  # a call served while it spins
    # Polled every 0.15 s: the burst is over, and between two looks the hub sleeps long.
    wait_until(lambda: not spin.spinning and spin.window == 0.002, timeout=5, interval=0.15,
               message="the window goes back after the burst")
    assert not skipped(spin, 1)


def test_a_preempted_spin_ends_at_once_and_counts_as_wasted():
    spin = fixed(0.5, preempted=PREEMPTED)
    spin.before_wait()
    assert spin.spinning

    def hog():  # holds the loop, as another process holding the core would
        end = time.perf_counter() + 4 * PREEMPTED
        while time.perf_counter() < end:
            pass

    began = time.perf_counter()
    gevent.spawn(hog)
    wait_until(lambda: not spin.spinning, timeout=5, interval=0.001, message="the spin ends")
    assert time.perf_counter() - began < 0.25  # well before its window was over
    assert skipped(spin, 1)


def test_useless_spins_are_skipped_twice_as_often_each_time_up_to_a_bound():
    spin = fixed(WINDOW)
    expected = 1
    for _ in range(9):  # 1, 2, 4, ... 64, then 64 again
        spin_to_the_end(spin)  # nothing served while it spun
        assert skipped(spin, expected)
        expected = min(MAX_SKIP, 2 * expected)
    assert expected == MAX_SKIP


def test_a_spin_that_serves_a_call_resets_the_backoff_and_lasts_a_window_past_it():
    spin = fixed(0.02)
    spin_to_the_end(spin)
    assert skipped(spin, 1)
    spin_to_the_end(spin)
    assert skipped(spin, 2)  # two useless spins in a row: two waits skipped
    spin.before_wait()
    assert spin.spinning
    served = []

    def call_comes():  # what a connection does once it has served a call
        gevent.sleep(0.01)
        spin.before_wait()
        served.append(time.perf_counter())

    gevent.spawn(call_comes)
    wait_until(lambda: not spin.spinning, timeout=5, interval=0.001, message="the spin ends")
    assert served and time.perf_counter() - served[0] >= 0.02
    spin.before_wait()  # useful: nothing is skipped after it
    assert spin.spinning


def test_spin_us_0_turns_it_off_and_the_default_is_100(tmp_path, etcd_config):
    config = load_config(str(echo_config(tmp_path, etcd_config)))
    assert config.service("echo").spin_us == 100
    assert for_hub(get_hub(), 0) is None
    spin = for_hub(get_hub(), 100e-6)
    assert spin is for_hub(get_hub(), 100e-6)  # one per hub
    assert (spin.shortest, spin.longest) == (SHORTEST, 100e-6)


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_a_server_that_has_served_and_is_now_idle_burns_no_cpu(tmp_path, etcd_config):
    path = echo_config(tmp_path, etcd_config, spin_us=1000)  # a long window: easy to see
    module = echo_idl(tmp_path)
    with ServiceProcess(path, "echo") as proc:
        proc.start()
        c = client(module, proc.port)
        for _ in range(300):
            assert c.echo("x") == "x"
        before = cpu_seconds(proc.pid)
        time.sleep(2.0)  # the measurement itself: two idle seconds, not a wait for a state
        used = cpu_seconds(proc.pid) - before
        c.close()
    # A hub that kept polling would have used ~2 s of CPU; an idle soa server uses a few ms
    # (its lease renewal, the idle sweeper).
    assert used < 0.2, f"an idle server used {used:.2f}s of CPU in 2s"
