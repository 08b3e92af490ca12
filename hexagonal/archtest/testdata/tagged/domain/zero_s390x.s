// Assembly for another architecture: ignored, and not Go.

TEXT ·nothing(SB), $0
