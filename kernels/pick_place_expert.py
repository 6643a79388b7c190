"""The scripted pick-and-place experts, in pure JAX. Version 1 (the default) is the original phase machine, whose
phase and timer the observations do not show; version 2 decides everything from the current observation.

Measured on 512 episodes of seed 1 (docs/training.md): version 1 succeeds in 100.0% (99.4% randomized), version 2 in
99.6% (99.4%), with 17% shorter episodes. Version 2 drops the cube in a few fast carries near the workspace's edge
(the cube swings more than HOLD_RADIUS in the fingers; a radius of 5 cm instead gave 99.6% and 99.0%), so it is
not the default: behaviour cloning with action chunks learns version 1 as well (docs/training.md).

Version 2, a function of (ee_pos, object_pos, place_pos, gripper_pos) alone, so behaviour cloning can copy it:
  - The cube is *in the hand* when the end effector is at its grasp point (REACHED of GRASP_OFFSET below the
    cube's centre), or when the fingers are on it (gripper_pos between EMPTY_OPENING and HELD_OPENING) and it is
    within HOLD_RADIUS of the grasp point. The gripper closes (-1) while the cube is in the hand and not yet
    placed, and opens (+1) otherwise.
  - *Placed*: the cube's centre is within PLACED of the place target; hold still and open until released.
  - In the hand, while the fingers are still closing on a resting cube (gripper_pos above GRIPPED_OPENING):
    hold still at the grasp point ("close until the fingers stop" on the cube).
  - In the hand and gripped: move the cube along a funnel over the place target: its height target is
    FUNNEL x (horizontal distance to the target - FUNNEL_SLACK) above the target, at most CARRY_HEIGHT; below
    that height by more than LIFT_MARGIN it rises straight up first (no dragging along the table).
  - Otherwise: open, and move to the grasp point along the same kind of funnel over the cube (at most
    APPROACH_HEIGHT above it): the end effector comes down as it lines up.

Version 1 (phases, in order):
  0 APPROACH  move above the cube (APPROACH_HEIGHT over its centre), gripper open
  1 DESCEND   move to the grasp point (GRASP_OFFSET below the cube's centre), gripper open
  2 CLOSE     hold still, gripper closed, for CLOSE_STEPS control steps
  3 LIFT      raise the cube to CARRY_HEIGHT straight up, gripper closed
  4 CARRY     move above the place target at CARRY_HEIGHT, gripper closed
  5 LOWER     lower the cube until it rests on the place target, gripper closed
  6 OPEN      hold still, gripper open, for OPEN_STEPS control steps
  7 RETREAT   move up to CARRY_HEIGHT above the place target, gripper open (stays here)
A moving phase ends when the end effector is within REACHED (m) of its waypoint. If the cube leaves the
gripper during LIFT, CARRY or LOWER (farther than DROPPED from the end effector), the expert starts over
at APPROACH. The phase and a timer are the policy's state, which the observations do not show.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

VERSIONS = (1, 2)
DEFAULT = 1

APPROACH, DESCEND, CLOSE, LIFT, CARRY, LOWER, OPEN, RETREAT = range(8)

APPROACH_HEIGHT = 0.10  # m above the cube's centre
GRASP_OFFSET = 0.005  # m: the grasp point lies this far below the cube's centre (pads reach lower)
CARRY_HEIGHT = 0.15  # m above the table for lifting and carrying
REACHED = 0.01  # m: waypoint tolerance
DROPPED = 0.05  # m: the cube counts as lost when its centre is this far from the end effector
CLOSE_STEPS = 10  # control steps to close the gripper (0.2 s at 50 Hz)
OPEN_STEPS = 6  # control steps to open it
GAIN = 10.0  # action per metre of error (saturates at 1, i.e. at 0.1 m of error)

# Version 2. Finger openings (gripper_pos, both fingers, m): 0.08 open, the 0.04 cube held at 0.026-0.055
# (measured over 1000 randomized version-1 episodes: the pads squeeze it, and a tilted cube is held wider).
EMPTY_OPENING = 0.015  # below: the fingers closed on nothing
HELD_OPENING = 0.065  # below (and above EMPTY_OPENING): the fingers are on the cube
GRIPPED_OPENING = 0.045  # below: the fingers have closed on a resting cube, lift it
HOLD_RADIUS = 0.03  # m: the cube's centre within this of the grasp point counts as in the hand
PLACED = 0.015  # m: the cube's centre within this of the place target counts as placed: release
LIFTED = 0.005  # m: a cube this far above its resting height has left the table
FUNNEL = 10.0  # m of height per m of horizontal distance, above the grasp point or the place target
FUNNEL_SLACK = 0.01  # m: horizontal distance from which the funnel is at its bottom
LIFT_MARGIN = 0.02  # m: a cube this far below its funnel height rises straight up first


def init(key=None, obs=None, params=None) -> tuple[jax.Array, jax.Array]:
    """Version 1's (phase, steps spent in it); the key, first observation and params are not needed."""
    return jnp.int32(APPROACH), jnp.int32(0)


def _funnel(ee_xy, goal, top):
    """The point on the funnel over `goal` (3,) for a horizontal position ee_xy: goal's x, y, and a height above
    goal that grows with the horizontal distance, capped at `top`."""
    dist = jnp.linalg.norm(goal[:2] - ee_xy)
    height = jnp.clip(FUNNEL * (dist - FUNNEL_SLACK), 0.0, top)
    return goal + jnp.array([0.0, 0.0, 1.0]) * height


def act_markov(ee_pos, object_pos, place_pos, gripper_pos):
    """Version 2: the action (4,) from one observation."""
    up = jnp.array([0.0, 0.0, 1.0])
    opening = gripper_pos[0]
    grasp = object_pos - GRASP_OFFSET * up
    to_grasp = jnp.linalg.norm(grasp - ee_pos)
    placed = jnp.linalg.norm(object_pos - place_pos) < PLACED
    fingers_on = (opening > EMPTY_OPENING) & (opening < HELD_OPENING) & (to_grasp < HOLD_RADIUS)
    in_hand = (to_grasp < REACHED) | fingers_on
    resting = object_pos[2] < place_pos[2] + LIFTED
    closing = in_hand & resting & (opening >= GRIPPED_OPENING)
    # In the hand: where the cube should go, then the end effector moves by the cube's error.
    cube_goal = _funnel(object_pos[:2], place_pos, CARRY_HEIGHT - place_pos[2])
    rise_first = object_pos[2] < cube_goal[2] - LIFT_MARGIN
    cube_goal = jnp.where(rise_first, jnp.concatenate([object_pos[:2], cube_goal[2:]]), cube_goal)
    carry = ee_pos + (cube_goal - object_pos)
    fetch = _funnel(ee_pos[:2], grasp, APPROACH_HEIGHT + GRASP_OFFSET)
    target = jnp.where(placed, ee_pos, jnp.where(closing, grasp, jnp.where(in_hand, carry, fetch)))
    move = jnp.clip((target - ee_pos) * GAIN, -1.0, 1.0)
    gripper = jnp.where(in_hand & ~placed, -1.0, 1.0)
    return jnp.concatenate([move, gripper[None]]).astype(ee_pos.dtype)


def act(state, ee_pos, object_pos, place_pos):
    """Version 1, one step: (action (4,), next state). place_pos is where the cube's centre should rest."""
    phase, timer = state
    up = jnp.array([0.0, 0.0, 1.0])
    lift_point = jnp.concatenate([object_pos[:2], jnp.array([CARRY_HEIGHT])])
    above_place = jnp.concatenate([place_pos[:2], jnp.array([CARRY_HEIGHT])])
    waypoints = jnp.stack(
        [
            object_pos + APPROACH_HEIGHT * up,  # APPROACH
            object_pos - GRASP_OFFSET * up,  # DESCEND
            ee_pos,  # CLOSE: hold
            lift_point,  # LIFT
            above_place,  # CARRY
            place_pos - GRASP_OFFSET * up,  # LOWER: the cube's centre onto the place target
            ee_pos,  # OPEN: hold
            above_place,  # RETREAT
        ]
    )
    target = waypoints[phase]
    closed = (phase >= CLOSE) & (phase <= LOWER)
    gripper = jnp.where(closed, -1.0, 1.0)
    move = jnp.clip((target - ee_pos) * GAIN, -1.0, 1.0)

    reached = jnp.linalg.norm(target - ee_pos) < REACHED
    timed_out = jnp.where(phase == CLOSE, timer >= CLOSE_STEPS, timer >= OPEN_STEPS)
    holding_phase = (phase == CLOSE) | (phase == OPEN)
    advance = jnp.where(holding_phase, timed_out, reached) & (phase < RETREAT)
    dropped = (phase >= LIFT) & (phase <= LOWER) & (jnp.linalg.norm(object_pos - ee_pos) > DROPPED)
    next_phase = jnp.where(dropped, APPROACH, jnp.where(advance, phase + 1, phase)).astype(jnp.int32)
    next_timer = jnp.where(next_phase == phase, timer + 1, 0).astype(jnp.int32)
    action = jnp.concatenate([move, gripper[None]]).astype(ee_pos.dtype)
    return action, (next_phase, next_timer)
