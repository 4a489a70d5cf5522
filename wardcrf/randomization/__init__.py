"""Randomization: allocation lists made at the hub, allocation on the ward, blinding (issue 20).

`design` reads what a format-2 protocol says about allocation; `lists`
generates a list (permuted blocks of random sizes per stratum, from a seed
drawn from the OS CSPRNG); `sealing` seals it for one ward laptop and the
hub; `service` makes, receives and takes allocations; `feature` registers
the projectors. docs/randomization.md is the design and threat model.
"""
