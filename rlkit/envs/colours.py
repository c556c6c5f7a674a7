"""The colours every drawn frame uses (point-robot planes, gauges, clip labels), in one place.

One palette for the drawings keeps them alike across envs, and lets an animated GIF reserve these
exact colours in its shared palette (:func:`rlkit.evaluation.protocol_video.write_gif`), so a goal stays red
after quantisation instead of turning into the nearest floor shade.
"""

GOAL = (220, 60, 60)  # the current task's goal or target
AGENT = (30, 80, 200)  # the agent, or what it does (a velocity)
TRAIL = (150, 190, 240)  # where the agent has been
OTHER_GOALS = (170, 170, 170)
AXIS = (225, 225, 225)
SCALE = (120, 120, 120)  # a gauge's ticks
PANEL = (240, 240, 240)  # a gauge's background
BACKGROUND = (255, 255, 255)
TEXT = (20, 20, 20)

ALL = (GOAL, AGENT, TRAIL, OTHER_GOALS, AXIS, SCALE, PANEL, BACKGROUND, TEXT)
