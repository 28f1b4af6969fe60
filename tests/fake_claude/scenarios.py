"""Scripted `claude -p --output-format stream-json --verbose` runs, composed from the documented
message format (claude-code-formats.md, section 3), for the fake `claude` to replay."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

SESSION = "9d1c2b3a-4e5f-4a6b-8c7d-0e1f2a3b4c5d"
SONNET = "claude-sonnet-4-5-20250929"
HAIKU = "claude-haiku-4-5-20251001"
UNKNOWN_MODEL = "acme-unpriced-model-1"

Message = dict[str, Any]


@dataclass
class Script:
    """What the fake prints and how it ends."""

    stdout: list[Message | str]
    stderr: str = ""
    exit_code: int = 0
    hang: bool = False
    ignore_sigterm: bool = False
    spawn_child: bool = False
    pause_after_line: int | None = None  # then wait until resume_file exists
    resume_file: str | None = None
    keep_session: bool = False  # run the scripted session whatever --session-id says

    def to_json(self) -> dict[str, Any]:
        return {
            "pause_after_line": self.pause_after_line,
            "resume_file": self.resume_file,
            "keep_session": self.keep_session,
            "stdout": self.stdout,
            "stderr": self.stderr,
            "exit_code": self.exit_code,
            "hang": self.hang,
            "ignore_sigterm": self.ignore_sigterm,
            "spawn_child": self.spawn_child,
        }

    @property
    def messages(self) -> list[Message]:
        return [item for item in self.stdout if isinstance(item, dict)]


# ---- message builders ------------------------------------------------------------------------


def init(model: str = SONNET) -> Message:
    return {
        "type": "system",
        "subtype": "init",
        "cwd": "/home/dev/demo",
        "session_id": SESSION,
        "uuid": "0b1c2d3e-0000-4000-8000-000000000001",
        "model": model,
        "tools": ["Agent", "Bash", "Edit", "Read", "Skill", "Write"],
        "mcp_servers": [],
        "permissionMode": "default",
        "slash_commands": ["compact", "lint-fix"],
        "apiKeySource": "ANTHROPIC_API_KEY",
        "claude_code_version": "2.1.100",
        "output_style": "default",
        "agents": ["general-purpose", "Explore", "Plan", "code-reviewer"],
        "skills": ["lint-fix"],
        "plugins": [],
    }


def usage(inp: int, out: int, *, read: int = 0, write: int = 0) -> dict[str, Any]:
    return {
        "input_tokens": inp,
        "cache_creation_input_tokens": write,
        "cache_read_input_tokens": read,
        "output_tokens": out,
        "service_tier": "standard",
    }


def assistant(
    message_id: str,
    block: dict[str, Any],
    tokens: dict[str, Any],
    *,
    model: str = SONNET,
    parent: str | None = None,
) -> Message:
    """One streamed assistant message: one content block of API response `message_id`."""
    return {
        "type": "assistant",
        "message": {
            "id": message_id,
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [block],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": tokens,
        },
        "parent_tool_use_id": parent,
        "session_id": SESSION,
        "uuid": f"uuid-{message_id}-{block.get('id', block['type'])}",
    }


def text(value: str) -> dict[str, Any]:
    return {"type": "text", "text": value}


def tool_use(tool_use_id: str, name: str, tool_input: dict[str, Any]) -> dict[str, Any]:
    return {"type": "tool_use", "id": tool_use_id, "name": name, "input": tool_input}


def tool_result(
    tool_use_id: str,
    content: str | list[dict[str, Any]],
    *,
    detail: Any = None,
    is_error: bool = False,
    parent: str | None = None,
) -> Message:
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": tool_use_id, "content": content}
    if is_error:
        block["is_error"] = True
    message: Message = {
        "type": "user",
        "message": {"role": "user", "content": [block]},
        "parent_tool_use_id": parent,
        "session_id": SESSION,
        "uuid": f"uuid-result-{tool_use_id}",
    }
    if detail is not None:
        message["tool_use_result"] = detail
    return message


def subagent_prompt(parent: str, prompt: str) -> Message:
    return {
        "type": "user",
        "message": {"role": "user", "content": [text(prompt)]},
        "parent_tool_use_id": parent,
        "session_id": SESSION,
        "uuid": f"uuid-prompt-{parent}",
    }


def result(
    *,
    total_cost_usd: float,
    tokens: dict[str, Any],
    subtype: str = "success",
    text_result: str | None = None,
    errors: list[str] | None = None,
    num_turns: int = 6,
) -> Message:
    message: Message = {
        "type": "result",
        "subtype": subtype,
        "is_error": subtype != "success",
        "duration_ms": 95210,
        "duration_api_ms": 71840,
        "num_turns": num_turns,
        "stop_reason": "end_turn",
        "session_id": SESSION,
        "total_cost_usd": total_cost_usd,
        "usage": tokens,
        "modelUsage": {},
        "permission_denials": [],
        "uuid": "0b1c2d3e-0000-4000-8000-000000000009",
    }
    if subtype == "success":
        message["result"] = text_result or ""
    else:
        message["errors"] = errors or []
    return message


# ---- scripted runs ---------------------------------------------------------------------------

REVIEWER = "toolu_01A"  # Agent tool use spawning code-reviewer
EXPLORER = "toolu_01B"  # Task (the tool's old name) spawning Explore
LINT_SKILL = "toolu_01S"  # Skill call made inside code-reviewer

SUCCESS_TEXT = "Fixed 2 lint issues."
SUCCESS_TOTAL_COST = 0.0591


def success() -> Script:
    """Two subagents (one response of code-reviewer split over two messages) and a skill used
    inside code-reviewer."""
    main_1 = usage(12, 5, read=18000, write=900)
    return Script(
        [
            init(),
            assistant("msg_M1", text("I'll review and explore."), main_1),
            assistant(
                "msg_M1",
                tool_use(
                    REVIEWER,
                    "Agent",
                    {
                        "description": "Review",
                        "prompt": "Review src/",
                        "subagent_type": "code-reviewer",
                    },
                ),
                usage(12, 150, read=18000, write=900),
            ),
            assistant(
                "msg_M1",
                tool_use(
                    EXPLORER,
                    "Task",
                    {"description": "Explore", "prompt": "Map src/", "subagent_type": "Explore"},
                ),
                usage(12, 160, read=18000, write=900),
            ),
            {
                "type": "system",
                "subtype": "task_started",
                "task_id": "task-a",
                "tool_use_id": REVIEWER,
                "description": "Review",
                "subagent_type": "code-reviewer",
                "session_id": SESSION,
                "uuid": "uuid-task-a",
            },
            subagent_prompt(REVIEWER, "Review src/"),
            subagent_prompt(EXPLORER, "Map src/"),
            assistant(
                "msg_C1",
                text("Running the linter."),
                usage(4, 2, read=12000, write=700),
                model=HAIKU,
                parent=REVIEWER,
            ),
            assistant(
                "msg_C1",
                tool_use(LINT_SKILL, "Skill", {"skill": "lint-fix", "args": "src/"}),
                usage(4, 88, read=12000, write=700),
                model=HAIKU,
                parent=REVIEWER,
            ),
            tool_result(
                LINT_SKILL,
                "Launching skill: lint-fix",
                parent=REVIEWER,
                detail={"success": True, "commandName": "lint-fix"},
            ),
            assistant(
                "msg_E1",
                text("src/ has 3 modules."),
                usage(3, 120, read=9000),
                model=HAIKU,
                parent=EXPLORER,
            ),
            assistant(
                "msg_C2",
                text("Found 2 issues."),
                usage(6, 410, read=12700, write=300),
                model=HAIKU,
                parent=REVIEWER,
            ),
            tool_result(
                REVIEWER,
                [text("Found 2 issues.")],
                detail={
                    "status": "completed",
                    "agentId": "a1b2c3d4e5f60718",
                    "agentType": "code-reviewer",
                    "content": [text("Found 2 issues.")],
                    "prompt": "Review src/",
                    "totalDurationMs": 61500,
                    "totalTokens": 13416,
                    "totalToolUseCount": 2,
                    "usage": usage(6, 410, read=12700, write=300),
                },
            ),
            tool_result(
                EXPLORER,
                [text("src/ has 3 modules.")],
                detail={
                    "status": "completed",
                    "agentId": "b1b2c3d4e5f60718",
                    "agentType": "Explore",
                    "content": [text("src/ has 3 modules.")],
                    "prompt": "Map src/",
                    "totalDurationMs": 8000,
                    "totalTokens": 9123,
                    "totalToolUseCount": 1,
                    "usage": usage(3, 120, read=9000),
                },
            ),
            assistant("msg_M2", text(SUCCESS_TEXT), usage(28, 660, read=73000, write=2200)),
            result(
                total_cost_usd=SUCCESS_TOTAL_COST,
                text_result=SUCCESS_TEXT,
                tokens=usage(40, 820, read=91000, write=3100),
            ),
        ]
    )


FAILING = "toolu_02A"  # general-purpose (no subagent_type), fails with is_error
BACKGROUND = "toolu_02B"  # researcher, runs in the background, completes by notification
UNSTREAMED = "toolu_02C"  # planner, no streamed messages: its tool result's usage is all we get
UNPRICED = "toolu_02D"  # mystery, on a model without a price
ABANDONED = "toolu_02E"  # sleeper, in the background, never finishes
DEPLOY_SKILL = "toolu_02S"  # Skill in the old format ({"command": "/deploy"}) in the main loop
EDGE_TOTAL_COST = 0.25
PLANNER_USAGE = usage(5, 300, read=4000, write=100)


def subagent_edge_cases() -> Script:
    """A failing, a background, an unstreamed, an unpriced and an abandoned subagent."""

    def spawn(tool_use_id: str, agent_input: dict[str, Any], out: int) -> Message:
        block = tool_use(tool_use_id, "Agent", {"description": "d", "prompt": "p", **agent_input})
        return assistant("msg_N1", block, usage(10, out, read=20000, write=500))

    return Script(
        [
            init(),
            spawn(FAILING, {}, 40),
            spawn(BACKGROUND, {"subagent_type": "researcher", "run_in_background": True}, 80),
            spawn(UNSTREAMED, {"subagent_type": "planner"}, 120),
            spawn(UNPRICED, {"subagent_type": "mystery"}, 160),
            spawn(ABANDONED, {"subagent_type": "sleeper", "run_in_background": True}, 200),
            assistant(
                "msg_N2",
                tool_use(DEPLOY_SKILL, "Skill", {"command": "/deploy"}),
                usage(7, 30, read=21000),
            ),
            tool_result(
                DEPLOY_SKILL,
                "Launching skill: deploy",
                detail={"success": True, "commandName": "deploy"},
            ),
            {
                "type": "system",
                "subtype": "task_started",
                "task_id": "bg-1",
                "tool_use_id": BACKGROUND,
                "description": "d",
                "session_id": SESSION,
                "uuid": "uuid-bg-1",
            },
            assistant(
                "msg_F1",
                text("Trying..."),
                usage(2, 50, read=3000, write=1000),
                model=HAIKU,
                parent=FAILING,
            ),
            tool_result(
                FAILING,
                "Agent terminated early due to an API error: overloaded",
                is_error=True,
                detail="Error: Agent terminated early",
            ),
            tool_result(
                BACKGROUND,
                [text("Async agent launched.")],
                detail={
                    "status": "async_launched",
                    "agentId": "c1",
                    "description": "d",
                    "prompt": "p",
                    "outputFile": "/tmp/c1.out",
                },
            ),
            tool_result(
                ABANDONED,
                [text("Async agent launched.")],
                detail={
                    "status": "async_launched",
                    "agentId": "e1",
                    "description": "d",
                    "prompt": "p",
                    "outputFile": "/tmp/e1.out",
                },
            ),
            assistant(
                "msg_R1",
                text("Researching."),
                usage(1, 700, read=5000, write=2000),
                model=SONNET,
                parent=BACKGROUND,
            ),
            assistant(
                "msg_X1",
                text("Hmm."),
                usage(9, 90, read=1000),
                model=UNKNOWN_MODEL,
                parent=UNPRICED,
            ),
            tool_result(
                UNPRICED,
                [text("done")],
                detail={"status": "completed", "agentId": "d1", "totalDurationMs": 1000},
            ),
            assistant(
                "msg_Z1", text("Zzz."), usage(3, 33, read=2000), model=HAIKU, parent=ABANDONED
            ),
            tool_result(
                UNSTREAMED,
                [text("The plan.")],
                detail={
                    "status": "completed",
                    "agentId": "p1",
                    "agentType": "planner",
                    "resolvedModel": HAIKU,
                    "totalDurationMs": 4200,
                    "totalTokens": 4405,
                    "usage": PLANNER_USAGE,
                },
            ),
            {
                "type": "system",
                "subtype": "task_notification",
                "task_id": "bg-1",
                "status": "completed",
                "output_file": "/tmp/c1.out",
                "summary": "Research done",
                "session_id": SESSION,
                "uuid": "uuid-note-1",
            },
            assistant("msg_N3", text("All done."), usage(12, 40, read=22000)),
            result(
                total_cost_usd=EDGE_TOTAL_COST,
                text_result="All done.",
                tokens=usage(29, 270, read=63000, write=500),
            ),
        ]
    )


MAX_TURNS_ERROR = "Reached maximum number of turns (3)"


def error_max_turns() -> Script:
    """An error result: the run stopped at its turn limit; claude exits 1."""
    return Script(
        [
            init(),
            assistant("msg_T1", text("Working."), usage(9, 200, read=30000)),
            result(
                subtype="error_max_turns",
                total_cost_usd=0.031,
                num_turns=3,
                tokens=usage(9, 200, read=30000),
                errors=[MAX_TURNS_ERROR],
            ),
        ],
        exit_code=1,
    )


CRASH_STDERR = "FATAL ERROR: Reached heap limit Allocation failed - JavaScript heap out of memory\n"
CRASH_REVIEWER = "toolu_03A"


def crash() -> Script:
    """A crash mid-stream: a subagent is running, no result, stderr text, exit 137."""
    return Script(
        [
            init(),
            assistant(
                "msg_K1",
                tool_use(
                    CRASH_REVIEWER, "Agent", {"prompt": "p", "subagent_type": "code-reviewer"}
                ),
                usage(12, 100, read=18000, write=900),
            ),
            assistant(
                "msg_K2",
                text("Looking."),
                usage(4, 60, read=12000, write=700),
                model=HAIKU,
                parent=CRASH_REVIEWER,
            ),
        ],
        stderr=CRASH_STDERR,
        exit_code=137,
    )


def hang() -> Script:
    """Starts, then never ends; ignores SIGTERM and has a child in its process group."""
    return Script([init()], hang=True, ignore_sigterm=True, spawn_child=True)


def invalid_output() -> Script:
    """A line that is not JSON in the middle of an otherwise good stream."""
    return Script(
        [
            init(),
            "Error: something went wrong, retrying",
            result(total_cost_usd=0.01, text_result="ok", tokens=usage(1, 1)),
        ]
    )


def no_result() -> Script:
    """A stream that ends, with exit code 0, before any result message."""
    return Script([init(), assistant("msg_Q1", text("Half a thought"), usage(5, 10))])


def simple(text_result: str = "Done.") -> Script:
    """The smallest successful run."""
    return Script(
        [
            init(),
            assistant("msg_S1", text(text_result), usage(10, 20, read=100)),
            result(total_cost_usd=0.002, text_result=text_result, tokens=usage(10, 20, read=100)),
        ]
    )
