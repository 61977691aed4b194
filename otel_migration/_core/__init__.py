"""The core every feature builds on: names, settings, context, records, the recorder and the runtime.

Imports no feature: features import it, and the top-level set-up passes their objects in.
"""
