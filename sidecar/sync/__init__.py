"""End-to-end-encrypted sync and backup through the cloud API (DESIGN §6).

One module per concern: :mod:`keys` (sync key, recovery words, rotation), :mod:`envelope`
(AEAD-sealed batches), :mod:`stream` (chunked backup encryption), :mod:`client` (the cloud
API), :mod:`state` (outbox and pull bookkeeping), :mod:`apply` (last-writer-wins through the
one write path), :mod:`push` / :mod:`pull`, :mod:`backup`, :mod:`service` (the online/offline
loop) and :mod:`setup` (plugging it into the app).
"""
