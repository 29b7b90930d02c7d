"""Built-in VoiceSeal plugins, each registered through the `voiceseal` entry-point group."""
