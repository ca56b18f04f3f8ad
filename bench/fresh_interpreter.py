"""Run one job the way a platform without a warm pool would: in a fresh Python interpreter.

It does what a qrt job process does (import qiskit, qiskit-aer and the runtime codec, decode the
params, call main, encode the result), so the difference to qrt is the start-up it avoids.
"""

import importlib
import json
import sys

import qiskit  # noqa: F401
from qiskit_aer import AerSimulator
from qiskit_ibm_runtime import RuntimeDecoder, RuntimeEncoder


class Messenger:
    def publish(self, message, encoder=RuntimeEncoder, final=False):
        print(json.dumps(message, cls=encoder))


if __name__ == "__main__":
    programs_dir, module, params = sys.argv[1:4]
    sys.path.insert(0, programs_dir)
    main = importlib.import_module(module).main
    result = main(AerSimulator(), Messenger(), **json.loads(params, cls=RuntimeDecoder))
    print(json.dumps(result, cls=RuntimeEncoder))
