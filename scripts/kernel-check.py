#!/usr/bin/env python3
"""Bitcoin Core's consensus engine as a line-protocol helper for WarpPool's chain simulator.

Runs py-bitcoinkernel (a ctypes wrapper over Bitcoin Core's libbitcoinkernel) on a fresh
regtest chainstate in a temporary data directory, removed at exit. The simulator feeds it
every block of its chain in order, and reads one reply line per request line:

    ready <genesis hash> <protocol version>      once, at start
    <block hex>  ->  ok <tip height> <tip hash>   the engine accepted (or stored) the block
                     invalid <mode> <result> <reason>
                                                  the engine rejected it: ValidationMode and
                                                  BlockValidationResult names, then Core's
                                                  reject reason as its log gave it, or "-"
    reset        ->  reset <genesis hash>         a new, empty chainstate (genesis only)
    (bad input)  ->  error <message>           not hex, too long, or not a block

Lines longer than LINE_BYTES_MAX are refused with "error". Only the standard library and
pbk are used; stderr carries nothing unless the helper fails.
"""

import os
import re
import shutil
import signal
import sys
import tempfile

import pbk

PROTOCOL_VERSION = 1
# The simulator's own bound (loadgen/src/chain/kernel.rs, KERNEL_LINE_BYTES_MAX): a block of
# 4 MWU is at most 4 MB, 8 MB in hex, plus the newline.
LINE_BYTES_MAX = 8_000_000 + 64
# Core's log lines that carry a failed block's state (state.ToString() is "reason, debug").
REASON_PATTERNS = [
    re.compile(r"AcceptBlock FAILED \((.*)\)\s*$"),
    re.compile(r"ConnectBlock [0-9a-f]{64} failed, (.*)$"),
    re.compile(r"ProcessNewBlock: .*?FAILED \((.*)\)\s*$"),
]


class Engine:
    def __init__(self):
        self.logs = []
        # Keep the connection alive: it delivers Core's log lines to self.logs.
        self.log_connection = pbk.LoggingConnection(self.logs.append)
        self.checked = []
        self.callbacks = pbk.ValidationInterfaceCallbacks(block_checked=self.on_checked)
        self.datadir = None
        self.chainman = None
        self.reset()

    def on_checked(self, _user_data, _block, state):
        self.checked.append((state.validation_mode, state.block_validation_result))

    def reset(self):
        self.chainman = None
        if self.datadir is not None:
            shutil.rmtree(self.datadir, ignore_errors=True)
        self.datadir = tempfile.mkdtemp(prefix="warppool-kernel-")
        context = pbk.make_context(pbk.ChainType.REGTEST, validation_callbacks=self.callbacks)
        blocks = os.path.join(self.datadir, "blocks")
        options = pbk.ChainstateManagerOptions(context, self.datadir, blocks)
        # The block index and the UTXO set in memory: nothing of them needs to outlive us.
        options.update_block_tree_db_in_memory(True)
        options.update_chainstate_db_in_memory(True)
        options.set_worker_threads_num(0)
        self.chainman = pbk.ChainstateManager(options)
        self.logs.clear()
        return self.tip()[1]

    def tip(self):
        chain = self.chainman.get_active_chain()
        entry = chain.block_tree_entries[chain.height]
        return chain.height, str(entry.block_hash)

    def reason(self):
        for line in reversed(self.logs):
            for pattern in REASON_PATTERNS:
                found = pattern.search(line.strip())
                if found:
                    return found.group(1).split(", ")[0].strip() or "-"
        return "-"

    def check(self, raw):
        self.logs.clear()
        self.checked.clear()
        try:
            block = pbk.Block(raw)
        except Exception as e:  # noqa: BLE001 - any decode failure is one answer
            # Not a verdict of Core's validation: the simulator decodes every block first.
            return f"error the engine cannot decode the block ({type(e).__name__})"
        try:
            self.chainman.process_block(block)
            failed = None
        except pbk.ProcessBlockException as e:
            failed = e
        bad = [c for c in self.checked if c[0] != pbk.ValidationMode.VALID]
        if failed is None and not bad:
            height, tip = self.tip()
            return f"ok {height} {tip}"
        mode, result = bad[-1] if bad else (pbk.ValidationMode.INVALID, None)
        result_name = result.name if result is not None else "UNKNOWN"
        return f"invalid {mode.name} {result_name} {self.reason()}"

    def close(self):
        self.chainman = None
        if self.datadir is not None:
            shutil.rmtree(self.datadir, ignore_errors=True)


def main():
    # A terminated helper still removes its data directory (the finally below).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    engine = Engine()
    out = sys.stdout
    try:
        out.write(f"ready {engine.tip()[1]} {PROTOCOL_VERSION}\n")
        out.flush()
        for line in iter(lambda: sys.stdin.buffer.readline(LINE_BYTES_MAX + 1), b""):
            if len(line) > LINE_BYTES_MAX or not line.endswith(b"\n"):
                reply = "error line too long or unterminated"
                # Skip the rest of an over-long line.
                while line and not line.endswith(b"\n"):
                    line = sys.stdin.buffer.readline(LINE_BYTES_MAX + 1)
            else:
                text = line.strip().decode("ascii", "replace")
                if text == "reset":
                    reply = f"reset {engine.reset()}"
                else:
                    try:
                        raw = bytes.fromhex(text)
                    except ValueError:
                        raw = None
                    reply = engine.check(raw) if raw else "error not hex"
            out.write(reply + "\n")
            out.flush()
    finally:
        engine.close()


if __name__ == "__main__":
    main()
