"""What tests and benchmarks share: the local Supabase stack, the scripted LLM, the audio
harness, the avatar rig, fake servers and rooms, the desk's seeded world and load calls.

Never imported by the worker: these are rigs around it.
"""
