"""Records and tables shared by every layer, one module per concept; stdlib only.

    media.py       the transfer syntax table and media types (PS3.18 §8.7.3), a parsed Accept range
    uids.py        what a UID may be (PS3.5 §9.1)
    stored.py      what the index holds for a stored instance
    appearance.py  the display pipeline's inputs (PS3.3 C.11): LUTs, windows, per-frame values
    rendering.py   the parsed parameters of Rendered, Rendered MPR and Rendered 3D requests
"""
