"""``python -m helix_tf``: the ``helix-tf`` command (see :mod:`helix_tf.entry`)."""

from helix_tf.entry import console_main

if __name__ == "__main__":  # imported by a tool walking the package: nothing runs
    console_main()
