/**
 * MediaPipe's selfie segmentation, served by linkcall itself: the package's script, WASM,
 * graph and model are copied into the build by Vite (`?url`) and located through `locateFile`,
 * so nothing is fetched from anywhere else.
 */
import type { Results, SelfieSegmentation } from '@mediapipe/selfie_segmentation';
import scriptUrl from '@mediapipe/selfie_segmentation/selfie_segmentation.js?url';
import graphUrl from '@mediapipe/selfie_segmentation/selfie_segmentation.binarypb?url';
import modelUrl from '@mediapipe/selfie_segmentation/selfie_segmentation.tflite?url';
import landscapeUrl from '@mediapipe/selfie_segmentation/selfie_segmentation_landscape.tflite?url';
import simdJsUrl from '@mediapipe/selfie_segmentation/selfie_segmentation_solution_simd_wasm_bin.js?url';
import simdWasmUrl from '@mediapipe/selfie_segmentation/selfie_segmentation_solution_simd_wasm_bin.wasm?url';
import wasmJsUrl from '@mediapipe/selfie_segmentation/selfie_segmentation_solution_wasm_bin.js?url';
import wasmUrl from '@mediapipe/selfie_segmentation/selfie_segmentation_solution_wasm_bin.wasm?url';

const FILES: Record<string, string> = {
  'selfie_segmentation.binarypb': graphUrl,
  'selfie_segmentation.tflite': modelUrl,
  'selfie_segmentation_landscape.tflite': landscapeUrl,
  'selfie_segmentation_solution_simd_wasm_bin.js': simdJsUrl,
  'selfie_segmentation_solution_simd_wasm_bin.wasm': simdWasmUrl,
  'selfie_segmentation_solution_wasm_bin.js': wasmJsUrl,
  'selfie_segmentation_solution_wasm_bin.wasm': wasmUrl,
};

let script: Promise<void> | undefined;

/** The package is a classic script that defines a global; loaded once, from our own origin. */
function loadScript(): Promise<void> {
  return (script ??= new Promise<void>((resolve, reject) => {
    const el = document.createElement('script');
    el.src = scriptUrl;
    el.onload = () => resolve();
    el.onerror = () => {
      script = undefined;
      reject(new Error('The background blur model could not be loaded.'));
    };
    document.head.append(el);
  }));
}

export interface Segmenter {
  /** The person's mask for one picture (alpha = how sure the model is that a pixel is the person). */
  segment(image: HTMLCanvasElement): Promise<CanvasImageSource>;
  close(): void;
}

export async function createSegmenter(): Promise<Segmenter> {
  await loadScript();
  const Ctor = (globalThis as unknown as { SelfieSegmentation: typeof SelfieSegmentation }).SelfieSegmentation;
  const model = new Ctor({
    locateFile: (file) => {
      const url = FILES[file];
      if (!url) throw new Error(`unknown segmentation file ${file}`);
      return url;
    },
  });
  // The general model (modelSelection 0, 256×256 input), on the CPU (WASM); the landscape model
  // (1) was not measured against it here. Both files are served: the package may ask for either.
  model.setOptions({ modelSelection: 0, selfieMode: false, useCpuInference: true } as Parameters<typeof model.setOptions>[0]);
  let pending: ((r: Results) => void) | undefined;
  model.onResults((r) => {
    pending?.(r);
    pending = undefined;
  });
  await model.initialize();
  return {
    async segment(image) {
      const result = new Promise<Results>((resolve) => (pending = resolve));
      await model.send({ image });
      return (await result).segmentationMask;
    },
    close() {
      void model.close().catch(() => {});
    },
  };
}
