from qiskit import QuantumCircuit


def main(backend, user_messenger, **kwargs):
    circuit = kwargs.get("circuit")
    if circuit is not None:
        assert isinstance(circuit, QuantumCircuit), type(circuit)
        print("circuit", circuit.name, circuit.num_qubits)
    print("backend", backend.name)
    user_messenger.publish({"keys": sorted(kwargs)})
    return kwargs
