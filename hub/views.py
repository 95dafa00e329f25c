"""The result panel, drawn from the endpoint's JSON: per face its answers, or the reason there is
no answer, which stays where the answer would be."""
from __future__ import annotations

import html

import gradio as gr

from .config import TaskConfig


def error_result(message: str) -> dict:
    """The result JSON for a request with no answer; the page shows `error` in the result panel."""
    return {"faces": [], "message": message, "error": message, "errors": {}, "whole_image": False}


def age_text(result: dict) -> str:
    return (f"**{result['years']:.0f} years** (likely {result['low']:.0f}–{result['high']:.0f}), "
            f"band {result['band']}")


def face_widget(task: TaskConfig, face: dict, title: str) -> None:
    result = face.get(task.name)
    if result is None:
        return
    if not task.is_classification:
        gr.Markdown(f"{title}: {age_text(result)}")
        return
    if result["uncertain"]:
        title += f": uncertain (top class below {task.uncertain_below:.0%})"
    gr.Label(value=result["probs"], label=title, num_top_classes=3, show_heading=not result["uncertain"])


def render_faces(result: dict | None, tasks: list[TaskConfig]) -> None:
    if not result:
        return
    if result.get("error"):
        gr.HTML(f'<div class="hub-error" role="alert" style="border: 2px solid #d33; border-radius: 8px; '
                f'padding: 12px 16px; font-size: 1.05em">{html.escape(result["error"])}</div>')
        return
    gr.Markdown(result["message"])
    for face in result["faces"]:
        title = f"Face {face['index']}" + (" (low resolution)" if face.get("low_resolution") else "")
        if len(tasks) == 1:
            face_widget(tasks[0], face, title)
            continue
        gr.Markdown(f"#### {title}")
        with gr.Row():
            for task in tasks:
                face_widget(task, face, task.title)
