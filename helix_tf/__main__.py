"""``python -m helix_tf``: the ``helix-tf`` command (see :mod:`helix_tf.entry`)."""

from helix_tf.entry import console_main

console_main()
