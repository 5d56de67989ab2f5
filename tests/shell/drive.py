"""Drives recfusion's interactive shell through a pseudo-terminal, as a person at a terminal
would, and checks what they see: the continuation prompt, Tab completion of table functions
and of file paths inside quotes, statements typed ahead while a query runs, history saved
before the shell exits, a device as history refused (not read forever), and Ctrl-C that stops a running join (its CPU time stays flat) with
Ctrl-D then leaving at once. Usage: drive.py BINARY WORKDIR. Prints what failed; exit 1."""

import os
import pty
import select
import sys
import time

binary, workdir = sys.argv[1], sys.argv[2]
history = os.path.join(workdir, "history")
os.makedirs(os.path.join(workdir, "data"), exist_ok=True)
open(os.path.join(workdir, "data", "events.csv"), "w").write("user_id,item_id\n1,2\n")
failures = []


def check(condition, what, seen):
    if not condition:
        failures.append(f"{what}; the terminal showed: {seen[-600:]!r}")


def read(fd, seconds, until=None):
    seen = b""
    end = time.time() + seconds
    while time.time() < end:
        ready, _, _ = select.select([fd], [], [], 0.05)
        if ready:
            try:
                seen += os.read(fd, 65536)
            except OSError:
                break
            if until is not None and until in seen:
                break
    return seen


def cpu_seconds(pid):
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        fields = open(f"/proc/{pid}/task/{task}/stat").read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


pid, fd = pty.fork()
if pid == 0:
    os.environ["RECFUSION_HISTORY"] = history
    os.chdir(workdir)
    os.execv(binary, [binary])

seen = read(fd, 10, b"recfusion> ")
check(b"recfusion> " in seen, "no prompt", seen)

os.write(fd, b"SELECT\r")
seen = read(fd, 5, b"-> ")
check(b"        -> " in seen, "no continuation prompt for an open statement", seen)
os.write(fd, b"41 + 1 AS answer;\r")
seen = read(fd, 10, b"fetched")
check(b"| 42     |" in seen, "the two-line statement did not run", seen)
check(os.path.exists(history) and "41 + 1 AS answer;" in open(history).read(),
      "history not saved after the statement", seen)

os.write(fd, b"SELECT 'first paste' AS a;\rSELECT 'second paste' AS b;\r")
seen = read(fd, 10, b"second paste |")
check(b"first paste |" in seen and b"second paste |" in seen, "a pasted pair of statements did not both run", seen)
read(fd, 1, b"recfusion> ")

os.write(fd, b"SELECT * FROM recomm\t")
seen = read(fd, 2, b"recommend")
check(b"recommend" in seen, "Tab did not complete the table function recommend", seen)
os.write(fd, b"\x03")
read(fd, 1, b"recfusion> ")

os.write(fd, b"SELECT * FROM 'da\t")
seen = read(fd, 2, b"data/")
check(b"'data/" in seen, "Tab did not complete a directory inside quotes", seen)
os.write(fd, b"ev\t")
seen = read(fd, 2, b"events.csv")
check(b"events.csv" in seen, "Tab did not complete a file inside quotes", seen)
os.write(fd, b"\x03")
read(fd, 1, b"recfusion> ")

os.write(fd, b"SELECT count(*) AS slow FROM generate_series(1, 2000000) a, generate_series(1, 5) b;\r")
time.sleep(0.2)
os.write(fd, b"SELECT 'typed ahead' AS second;\r")
seen = read(fd, 60, b"typed ahead |")
check(b"10000000" in seen, "the slow statement did not finish", seen)
check(b"typed ahead |" in seen, "a statement typed while a query ran was lost", seen)
read(fd, 1, b"recfusion> ")

os.write(fd, b"CREATE VIEW pairs AS SELECT value % 97 AS user_id, value % 89 AS item_id FROM generate_series(1, 20000);\r")
read(fd, 5, b"OK")
os.write(fd, b"SELECT users FROM train_als('pairs', 'als.safetensors', 8, 20);\r")
seen = read(fd, 60, b"fetched")
check(b"] loss 0." in seen, "train_als's progress bar shows no loss", seen)
read(fd, 1, b"recfusion> ")

os.write(fd, b"SELECT count(*) FROM generate_series(1, 100000000) a, generate_series(1, 100) b;\r")
time.sleep(2)
os.write(fd, b"\x03")
seen = read(fd, 5, b"query cancelled")
check(b"query cancelled" in seen, "Ctrl-C did not cancel the query", seen)
time.sleep(0.5)
before = cpu_seconds(pid)
time.sleep(2)
spent = cpu_seconds(pid) - before
check(spent < 0.3, f"the process used {spent:.2f} s of CPU in the 2 s after Ctrl-C", seen)

os.write(fd, b"\x04")
end = time.time() + 5
exited = False
while time.time() < end:
    read(fd, 0.1)
    done, _ = os.waitpid(pid, os.WNOHANG)
    if done == pid:
        exited = True
        break
check(exited, "Ctrl-D did not leave the shell within 5 s", b"")
if not exited:
    os.kill(pid, 9)

# A history path that reads forever (a device) is not read at all: the shell says so and works.
pid, fd = pty.fork()
if pid == 0:
    os.environ["RECFUSION_HISTORY"] = "/dev/zero"
    os.chdir(workdir)
    os.execv(binary, [binary])
seen = read(fd, 10, b"recfusion> ")
check(b"not using /dev/zero as the shell's history: it is not a regular file" in seen,
      "a device as history was not refused with a message", seen)
os.write(fd, b"SELECT 6 * 7 AS product;\r")
seen = read(fd, 10, b"fetched")
check(b"| 42      |" in seen, "the shell with a device as history did not run a statement", seen)
os.write(fd, b"\x04")
end = time.time() + 5
while time.time() < end and os.waitpid(pid, os.WNOHANG)[0] != pid:
    read(fd, 0.1)

for failure in failures:
    print(failure)
sys.exit(1 if failures else 0)
