"""What qrt's services share: the job and program models, the registry, the bus and the stores."""
