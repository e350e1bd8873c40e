"""Code signatures: what a reactor's code is, compiled from which source, reaching which helpers,
constants and packages; hashed so that any change that can alter a result changes the signature."""
