"""The prompt widget: type a prompt, pick the sampling settings, press Generate, listen and look.

An ipywidgets form over `Pipeline.generate` (samod/generation.py): prompt text, seconds, steps, CFG
scale, seed and sampler, a Generate button, a progress bar that follows the sampler's steps, then an
audio player with its spectrogram (samod.display.show_audio). The button's callback is a plain method,
`PromptWidget.on_generate`, so a unit test can press the button without a browser.

    from samod.widget import PromptWidget
    PromptWidget(samod.generation.load_pipeline()).show()

Taught in notebooks/05_sampling.ipynb.
"""
from __future__ import annotations

import ipywidgets as widgets
from IPython.display import HTML, display

from samod.display import audio_html
from samod.generation import Pipeline, SamplingConfig
from samod.sampler import SAMPLERS


class PromptWidget:
    def __init__(self, pipeline: Pipeline, prompt: str = "Genre: Jazz|Instruments: Piano, Double Bass",
                 seconds: float | None = None, steps: int = SamplingConfig.steps,
                 cfg_scale: float | None = None, seed: int = SamplingConfig.seed,
                 sampler: str = SamplingConfig.sampler):
        self.pipeline = pipeline
        cfg_scale = pipeline.sampling.cfg_scale if cfg_scale is None else cfg_scale  # the profile's by default
        window = round(pipeline.window_seconds, 2)
        seconds = min(window, seconds if seconds is not None else window)
        self.prompt = widgets.Textarea(value=prompt, description="Prompt", layout=widgets.Layout(width="95%"))
        self.seconds = widgets.BoundedFloatText(value=seconds, min=0.5, max=window, step=0.5,
                                                description="Seconds")
        self.steps = widgets.BoundedIntText(value=steps, min=1, max=500, description="Steps")
        self.cfg_scale = widgets.BoundedFloatText(value=cfg_scale, min=0.0, max=30.0, step=0.5, description="CFG")
        self.seed = widgets.IntText(value=seed, description="Seed")
        self.sampler = widgets.Dropdown(options=list(SAMPLERS), value=sampler, description="Sampler")
        self.button = widgets.Button(description="Generate", button_style="primary", icon="music")
        self.progress = widgets.IntProgress(value=0, min=0, max=steps, description="Steps")
        self.status = widgets.Label(value="")
        self.output = widgets.Output()
        self.audio = None  # the last generated audio (2, T)
        self.button.on_click(self.on_generate)
        self.box = widgets.VBox([self.prompt, widgets.HBox([self.seconds, self.steps, self.cfg_scale]),
                                 widgets.HBox([self.seed, self.sampler, self.button]),
                                 widgets.HBox([self.progress, self.status]), self.output])

    def show(self) -> widgets.VBox:
        display(self.box)
        return self.box

    def _step(self, info: dict) -> None:
        self.progress.value = info["i"] + 1

    def on_generate(self, _button=None):
        """The Generate button: validate, sample with a progress bar, show player and spectrogram.

        Errors (empty prompt, seconds beyond the window, ...) are shown in the status line instead of
        raising, so the form stays usable; the audio is kept in `self.audio` and returned."""
        self.progress.max, self.progress.value = self.steps.value, 0
        self.button.disabled = True
        self.status.value = "generating..."
        try:
            audio = self.pipeline.generate(self.prompt.value, seconds=self.seconds.value, steps=self.steps.value,
                                           cfg_scale=self.cfg_scale.value, seed=self.seed.value,
                                           sampler=self.sampler.value, progress=False, callback=self._step)
        except ValueError as err:
            self.status.value = f"error: {err}"
            return None
        finally:
            self.button.disabled = False
        timing = self.pipeline.last_timing
        self.status.value = (f"{audio.shape[1] / 44100:.1f} s of audio in "
                             f"{timing['sampling'] + timing['decoding']:.1f} s")
        self.audio = audio
        self.output.outputs = ()  # replace the last song (works with and without a running kernel)
        self.output.append_display_data(HTML(audio_html(audio, title=self.prompt.value[:60], seconds=None)))
        return audio
