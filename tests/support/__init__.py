"""Helpers shared by the signing tests and the benchmarks: the test PKI served on 127.0.0.1
(:mod:`tests.support.pki`), SoftHSM2 tokens (:mod:`tests.support.hsm`), official-document PDFs
(:mod:`tests.support.pdfgen`) and the corpus of attacks on PDF signatures
(:mod:`tests.support.attacks`)."""
