#!/usr/bin/env python3
"""Run the kazoo 2.11.0 test suite against herd and gate on known failures.

The suite ships inside the kazoo wheel (``pytest --pyargs kazoo.tests``).  Its
harness (kazoo/testing/harness.py + common.py) starts every ZooKeeper server
as ``java ... QuorumPeerMain WORKDIR/zoo.cfg``; we put ``tests/kazoo`` first on
PATH so that ``java`` is our shim, which execs ``herd keeper --zoo-cfg ...``.

Typical use (stdlib only; the pytest run itself uses the venv's python):

    python3 tests/kazoo/run.py --setup          # create .venv, install deps
    python3 tests/kazoo/run.py                  # full run, gate on the list
    python3 tests/kazoo/run.py --only test_lock # pytest -k passthrough
    python3 tests/kazoo/run.py --update         # rewrite known_failures.txt
    python3 tests/kazoo/run.py --real-zookeeper # same, vs Debian's ZooKeeper
                                                # (apt-get install zookeeper)
    python3 tests/kazoo/run.py --real-zookeeper --cluster-size 3 \
        --known-failures /dev/null              # upstream-style 3-node baseline
    HERD_BIN=tests/kazoo/zk-as-herd python3 tests/kazoo/run.py
                                                # shim pipeline, real ZK behind

A run that hangs (no output for --stall seconds, or past --deadline) is
interrupted, its log kept with every thread's stack, and the suite run once
more; a second hang is a failure (see run_pytest and the README).

Exit status: 0 when every failing test is listed in known_failures.txt and no
listed test passed; 1 when a test failed that is not listed, or a listed test
now passes (stale entry), or nothing ran; 2 on a setup or harness problem.
"""

import argparse
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
DEFAULT_KNOWN = os.path.join(HERE, "known_failures.txt")
DEFAULT_VENV = os.path.join(REPO, ".venv")
# The ZooKeeper version the suite is told it runs against: Debian's real 3.8.0 for the
# baseline, and for herd the version its `envi` reports (keeper::fourlw::ZK_VERSION).
ZK_VERSION = "3.8.0"
HERD_ZK_VERSION = "3.8.4"

# Classpath for Debian's zookeeper 3.8.0 package (apt-get install zookeeper).
# zookeeper.jar's manifest Class-Path pulls in most deps; netty-codec and
# netty-resolver are missing from it (needed by the Netty/TLS listener) and
# slf4j-log4j12 + log4j make the harness's log4j.properties take effect.
DEBIAN_ZK_CLASSPATH = ":".join(
    "/usr/share/java/" + j
    for j in (
        "zookeeper.jar",
        "netty-codec.jar",
        "netty-resolver.jar",
        "slf4j-log4j12.jar",
        "log4j-1.2.jar",
    )
)

STATUS_RANK = {"passed": 0, "skipped": 1, "failed": 2}


def shown(path):
    """Path relative to the repo when inside it, else absolute."""
    path = os.path.abspath(path)
    rel = os.path.relpath(path, REPO)
    return path if rel.startswith("..") else rel


def log(msg=""):
    print(msg, flush=True)


# ---------------------------------------------------------------- setup ----


def venv_python(venv):
    return os.path.join(venv, "bin", "python")


def do_setup(venv):
    py = venv_python(venv)
    if not os.path.exists(py):
        log("creating venv %s" % venv)
        subprocess.check_call([sys.executable, "-m", "venv", venv])
    req = os.path.join(HERE, "requirements.txt")
    log("installing %s" % req)
    subprocess.check_call(
        [py, "-m", "pip", "install", "-q", "--disable-pip-version-check",
         "-r", req]
    )


def site_packages_of(py):
    """Directory holding the kazoo package for interpreter `py`."""
    out = subprocess.run(
        [py, "-c",
         "import os, kazoo, pytest_timeout; "
         "print(os.path.dirname(os.path.dirname(kazoo.__file__)))"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    if out.returncode != 0:
        return None, out.stderr.strip()
    return out.stdout.strip(), None


def find_herd(explicit):
    """HERD_BIN resolution: --herd-bin, $HERD_BIN, herd on PATH, then the
    newest of <target>/{release,debug}/herd."""
    if explicit:
        return os.path.abspath(explicit)
    if os.environ.get("HERD_BIN"):
        return os.path.abspath(os.environ["HERD_BIN"])
    on_path = shutil.which("herd")
    if on_path:
        return on_path
    target = os.environ.get("CARGO_TARGET_DIR") or os.path.join(REPO, "target")
    cands = [
        os.path.join(target, prof, "herd") for prof in ("release", "debug")
    ]
    cands = [c for c in cands if os.access(c, os.X_OK)]
    if cands:
        return max(cands, key=os.path.getmtime)
    return None


# ------------------------------------------------------- known failures ----


def read_known(path):
    """-> (header_lines, {test_id: reason}).  Header = leading comment block."""
    header, known = [], {}
    if not os.path.exists(path):
        return header, known
    in_header = True
    with open(path) as f:
        for raw in f:
            line = raw.rstrip("\n")
            stripped = line.strip()
            if not stripped or stripped.startswith("#"):
                if in_header:
                    header.append(line)
                continue
            in_header = False
            if "#" in stripped:
                tid, reason = stripped.split("#", 1)
                tid, reason = tid.strip(), reason.strip()
            else:
                tid, reason = stripped, ""
            known[tid] = reason or "TODO"
    while header and not header[-1].strip():
        header.pop()
    return header, known


def write_known(path, header, known):
    width = max([len(t) for t in known] + [0])
    with open(path, "w") as f:
        for line in header:
            f.write(line + "\n")
        if header:
            f.write("\n")
        for tid in sorted(known):
            f.write("%s  # %s\n" % (tid.ljust(width), known[tid]))


# ------------------------------------------------------------ junit xml ----


def test_id(site_packages, classname, name):
    """kazoo.tests.test_x.TestC + test_y -> kazoo/tests/test_x.py::TestC::test_y"""
    parts = classname.split(".") if classname else []
    for i in range(len(parts), 0, -1):
        rel = "/".join(parts[:i]) + ".py"
        if os.path.exists(os.path.join(site_packages, rel)):
            return "::".join([rel] + parts[i:] + [name])
    # collection errors and the like: keep what we have
    return "::".join([p for p in (classname, name) if p])


def parse_junit(path, site_packages):
    """-> {test_id: (status, message)}; worst status wins per id."""
    results = {}
    root = ET.parse(path).getroot()
    for tc in root.iter("testcase"):
        tid = test_id(site_packages, tc.get("classname", ""), tc.get("name", ""))
        status, msg = "passed", ""
        for child in tc:
            if child.tag in ("failure", "error"):
                status = "failed"
                msg = (child.get("message") or "").strip().splitlines()
                msg = msg[0] if msg else child.tag
                break
            if child.tag == "skipped" and status == "passed":
                status = "skipped"
                msg = (child.get("message") or "").strip()
        old = results.get(tid)
        if old is None or STATUS_RANK[status] > STATUS_RANK[old[0]]:
            results[tid] = (status, msg)
    return results


def _wait_quietly(proc, seconds):
    """True when proc ended within `seconds`."""
    try:
        proc.wait(timeout=seconds)
        return True
    except subprocess.TimeoutExpired:
        return False


def last_started_test(pytest_log):
    """The last test pytest -v announced before it hung (its line has no result)."""
    outcomes = ("PASSED", "FAILED", "SKIPPED", "ERROR", "XFAIL", "XPASS")
    last = None
    try:
        with open(pytest_log, "rb") as f:
            for line in f.read().decode("utf-8", "replace").splitlines():
                if line.startswith(("!!!", "===")) and last is not None:
                    break  # the summary after the interrupt
                words = line.split()
                if line.startswith("kazoo/") and "::" in words[0]:
                    done = len(words) > 1 and words[1] in outcomes
                    last = None if done else words[0]
    except OSError:
        pass
    return last


def run_pytest(cmd, cwd, env, pytest_log, deadline, stall):
    """Runs pytest, teeing its output to pytest_log; (exit status, hung,
    seconds). Hung: no output for `stall` seconds, or the whole run past
    `deadline`; pytest then gets SIGINT (it reports and writes the junit xml
    of what ran), and SIGKILL 30 s later if it is still there."""
    started = time.monotonic()
    # Own process group, so any server the harness leaves behind (e.g. after
    # a crash) can be ended afterwards without touching anything else.
    proc = subprocess.Popen(
        cmd, cwd=cwd, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, start_new_session=True,
    )
    hung = threading.Event()
    last_output = [time.monotonic()]

    def interrupt_when_stuck():
        while not _wait_quietly(proc, 1):
            now = time.monotonic()
            quiet, total = now - last_output[0], now - started
            if quiet < stall and total < deadline:
                continue
            hung.set()
            log("\nerror: the kazoo run %s; interrupting it"
                % ("printed nothing for %ds" % quiet if quiet >= stall
                   else "passed its %ds deadline" % deadline))
            for sig, grace in ((signal.SIGINT, 30), (signal.SIGKILL, 0)):
                try:
                    os.killpg(proc.pid, sig)
                except (ProcessLookupError, PermissionError):
                    return
                if _wait_quietly(proc, grace):
                    return
            return

    watchdog = threading.Thread(target=interrupt_when_stuck, daemon=True)
    watchdog.start()
    try:
        with open(pytest_log, "wb") as lf:
            for chunk in iter(lambda: proc.stdout.read1(65536), b""):
                last_output[0] = time.monotonic()
                lf.write(chunk)
                sys.stdout.buffer.write(chunk)
                sys.stdout.flush()
        rc = proc.wait()
    except KeyboardInterrupt:
        os.killpg(proc.pid, signal.SIGINT)
        rc = proc.wait()
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)  # leftovers of this run only
        except (ProcessLookupError, PermissionError):
            pass
    watchdog.join(timeout=60)
    return rc, hung.is_set(), time.monotonic() - started


# ----------------------------------------------------------------- main ----


def main():
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--only", metavar="PATTERN",
                    help="pytest -k expression (local debugging)")
    ap.add_argument("--update", action="store_true",
                    help="rewrite the known-failures file from this run "
                         "(keeps reasons; new entries get 'TODO')")
    ap.add_argument("--known-failures", default=DEFAULT_KNOWN, metavar="FILE")
    ap.add_argument("--timeout", type=int, default=60,
                    help="per-test timeout in seconds (pytest-timeout); "
                         "default %(default)s")
    ap.add_argument("--deadline", type=int, default=1200,
                    help="seconds the whole pytest run may take before it is "
                         "interrupted and reported as hung (a test whose "
                         "tearDown joins a thread that never ends is beyond "
                         "pytest-timeout's reach); default %(default)s")
    ap.add_argument("--stall", type=int, default=300,
                    help="seconds without any output after which the run is "
                         "interrupted and reported as hung; default "
                         "%(default)s")
    ap.add_argument("--herd-bin", metavar="PATH",
                    help="herd binary (default: $HERD_BIN, herd on PATH, "
                         "newest target/{release,debug}/herd)")
    ap.add_argument("--build", action="store_true",
                    help="cargo build -p herd first and use target/debug/herd")
    ap.add_argument("--setup", action="store_true",
                    help="create the venv and pip install requirements.txt")
    ap.add_argument("--venv", default=DEFAULT_VENV)
    ap.add_argument("--cluster-size", type=int, default=1,
                    help="ZOOKEEPER_CLUSTER_SIZE (harness default is 3; herd "
                         "is standalone-only, so default %(default)s)")
    ap.add_argument("--port-offset", type=int, default=20000,
                    help="ZOOKEEPER_PORT_OFFSET; server i uses offset+10*i "
                         "(+0 client, +1 election, +2 leader, +3 admin, "
                         "+4 secure client)")
    ap.add_argument("--no-ci", action="store_true",
                    help="unset CI for pytest (default sets CI=true like "
                         "kazoo's own CI: enables test_build and uses "
                         "ZOOKEEPER_VERSION instead of probing with 'envi')")
    ap.add_argument("--real-zookeeper", action="store_true",
                    help="run against Debian's ZooKeeper (real java, no shim)")
    ap.add_argument("--out-dir", default=None,
                    help="where junit.xml and pytest.log go "
                         "(default <target>/kazoo)")
    ap.add_argument("pytest_args", nargs="*",
                    help="extra pytest arguments (after --)")
    args = ap.parse_args()

    if args.setup:
        do_setup(args.venv)

    py = venv_python(args.venv)
    if not os.path.exists(py):
        log("error: no venv at %s; run with --setup" % args.venv)
        return 2
    site_packages, err = site_packages_of(py)
    if site_packages is None:
        log("error: kazoo/pytest-timeout not importable in %s (%s); "
            "run with --setup" % (py, err))
        return 2

    env = dict(os.environ)
    env["ZOOKEEPER_VERSION"] = ZK_VERSION if args.real_zookeeper else HERD_ZK_VERSION
    env["ZOOKEEPER_CLUSTER_SIZE"] = str(args.cluster_size)
    env["ZOOKEEPER_PORT_OFFSET"] = str(args.port_offset)
    env.pop("ZOOKEEPER_PATH", None)
    env.pop("ZOOKEEPER_OBSERVER_START_ID", None)
    env.pop("ZOOKEEPER_JAAS_AUTH", None)          # test_sasl sets it itself
    env.pop("ZOOKEEPER_LOCAL_SESSION_RO", None)   # test_connection sets it
    if args.no_ci:
        env.pop("CI", None)
    else:
        env["CI"] = "true"
    env["PYTHONDONTWRITEBYTECODE"] = "1"

    if args.real_zookeeper:
        if not os.path.exists("/usr/share/java/zookeeper.jar"):
            log("error: apt-get install zookeeper first")
            return 2
        env["ZOOKEEPER_CLASSPATH"] = DEBIAN_ZK_CLASSPATH
        log("server: real ZooKeeper (%s)" % DEBIAN_ZK_CLASSPATH)
    else:
        if args.build:
            subprocess.check_call(["cargo", "build", "-p", "herd"], cwd=REPO)
            target = env.get("CARGO_TARGET_DIR") or os.path.join(REPO, "target")
            args.herd_bin = os.path.join(target, "debug", "herd")
        herd = find_herd(args.herd_bin)
        if not herd or not os.access(herd, os.X_OK):
            log("error: no herd binary found (use --build, --herd-bin, "
                "HERD_BIN, or cargo build -p herd)")
            return 2
        env["HERD_BIN"] = herd
        # The harness only needs a non-empty classpath string (it is passed
        # to `java -cp`, which the shim ignores); with neither this nor
        # ZOOKEEPER_PATH set, ManagedZooKeeper.classpath crashes.
        env["ZOOKEEPER_CLASSPATH"] = "herd-shim"
        env["PATH"] = HERE + os.pathsep + env.get("PATH", "")
        log("server: herd via java shim, HERD_BIN=%s" % herd)

    target = env.get("CARGO_TARGET_DIR") or os.path.join(REPO, "target")
    out_dir = os.path.abspath(args.out_dir or os.path.join(target, "kazoo"))
    os.makedirs(out_dir, exist_ok=True)
    junit = os.path.join(out_dir, "junit.xml")
    pytest_log = os.path.join(out_dir, "pytest.log")
    if os.path.exists(junit):
        os.remove(junit)
    # An empty ini so no pytest config from the repo (an ancestor of the
    # venv's site-packages) is picked up.
    ini = os.path.join(out_dir, "pytest.ini")
    # faulthandler_timeout: a test still running after this long gets every
    # thread's stack dumped into the log (from a C watchdog thread, so it works
    # even when pytest-timeout's SIGALRM cannot interrupt the main thread).
    with open(ini, "w") as f:
        f.write("[pytest]\nfaulthandler_timeout = %d\n" % (2 * args.timeout + 30))

    cmd = [
        py, "-m", "pytest", "--pyargs", "kazoo.tests",
        "-c", ini, "--rootdir", site_packages,
        "-p", "no:cacheprovider", "-v", "-rA",
        "--timeout=%d" % args.timeout,
        "--junitxml=%s" % junit,
    ]
    if args.only:
        cmd += ["-k", args.only]
    cmd += args.pytest_args
    log("env: " + " ".join(
        "%s=%s" % (k, env[k]) for k in sorted(env)
        if k.startswith("ZOOKEEPER_") or k in ("CI", "HERD_BIN")))
    log("running: " + " ".join(cmd))
    log("log: %s" % pytest_log)

    # A hang (see run_pytest) is reported with its stacks and the run is made
    # once more: kazoo's harness has unbounded joins (a tearDown joining a
    # thread that waits forever, a client stop joining its connection thread)
    # that a rare timing turns into a hang which no per-test timeout ends. A
    # second hang fails the run; a test that fails (rather than hangs) is
    # never rerun.
    for attempt in (1, 2):
        rc, hung, elapsed = run_pytest(cmd, site_packages, env, pytest_log,
                                       args.deadline, args.stall)
        if not hung:
            break
        last = last_started_test(pytest_log)
        kept = pytest_log + ".hung-%d" % attempt
        shutil.copyfile(pytest_log, kept)
        log("error: pytest hung%s; every thread's stack is in %s (look for "
            "'Timeout (0:' and 'Thread 0x')"
            % (" in " + last if last else "", shown(kept)))
        if attempt == 2:
            log("error: the kazoo run hung twice; the run is a failure")
            return 1
        log("running the whole suite once more")
        if os.path.exists(junit):
            os.remove(junit)

    log("")
    log("=" * 72)
    log("pytest exit status %d after %.0fs" % (rc, elapsed))
    if rc not in (0, 1) and rc != 5:
        log("error: pytest did not complete a run (exit %d); see %s"
            % (rc, pytest_log))
        return 2
    if not os.path.exists(junit):
        log("error: no junit xml written")
        return 2

    results = parse_junit(junit, site_packages)
    passed = sorted(t for t, (s, _) in results.items() if s == "passed")
    failed = sorted(t for t, (s, _) in results.items() if s == "failed")
    skipped = sorted(t for t, (s, _) in results.items() if s == "skipped")

    header, known = read_known(args.known_failures)
    unexpected = [t for t in failed if t not in known]
    still_failing = [t for t in failed if t in known]
    fixed = [t for t in passed if t in known]
    listed_not_run = sorted(
        t for t in known if t not in results or results[t][0] == "skipped")

    if unexpected:
        log("")
        log("UNEXPECTED FAILURES (%d) - not in %s:"
            % (len(unexpected), shown(args.known_failures)))
        for t in unexpected:
            log("  %s  # %s" % (t, results[t][1][:150]))
    if fixed:
        log("")
        log("NOW PASSING BUT LISTED (%d) - remove from %s:"
            % (len(fixed), shown(args.known_failures)))
        for t in fixed:
            log("  %s  # %s" % (t, known[t]))
    if listed_not_run and not args.only:
        log("")
        log("listed but skipped/not run (%d):" % len(listed_not_run))
        for t in listed_not_run:
            log("  %s" % t)

    if args.update:
        ran = set(results)
        new_known = {t: r for t, r in known.items() if t not in ran}
        for t in failed:
            new_known[t] = known.get(t, "TODO")
        if not header:
            header = [
                "# kazoo 2.11.0 tests that currently fail against herd.",
                "# One test id per line, '# reason' after it.  Maintained by",
                "# tests/kazoo/run.py --update (keeps reasons; new -> TODO).",
            ]
        write_known(args.known_failures, header, new_known)
        log("")
        log("updated %s: %d entries (%d added, %d removed)" % (
            args.known_failures, len(new_known),
            len(set(new_known) - set(known)), len(set(known) - set(new_known))))

    log("")
    log("raw results: %d passed, %d failing (%d of them listed as known), "
        "%d skipped, %.0fs" % (len(passed), len(failed), len(still_failing),
                               len(skipped), elapsed))
    # Gate line: failures counted here are the ones not in the list.
    log("kazoo: %d passed, %d failed, %d skipped"
        % (len(passed), len(unexpected), len(skipped)))

    if not results or not (passed or failed):
        log("error: no test ran")
        return 1
    if args.update:
        return 0
    if unexpected or fixed:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
