"""Local stand-ins for the AWS pieces no emulator runs, and the emulators themselves."""
