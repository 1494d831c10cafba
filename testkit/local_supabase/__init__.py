"""A local Supabase-compatible data API (PostgreSQL + PostgREST + a Kong-like gateway)."""

from testkit.local_supabase.stack import REPO_ROOT, Stack, StackError, local_stack, start_stack

__all__ = ["REPO_ROOT", "Stack", "StackError", "local_stack", "start_stack"]
