"""The Gradio web app: judge, debate, browse, results, admin. All debater text is escaped."""
