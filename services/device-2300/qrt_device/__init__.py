"""device-2300: a simulated quantum device on QuTech's 2200/2300 ZeroMQ interface."""
