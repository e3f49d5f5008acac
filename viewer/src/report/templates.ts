/** Report templates by modality and body part: they fill sections that are still empty, nothing else. */
import type { SECTION_NAMES } from '../../../protocol/collab/records.ts'

type Section = (typeof SECTION_NAMES)[number]
export interface Template {
  name: string
  matches: (modalities: string[], bodyPart: string) => boolean
  sections: Partial<Record<Section, string>>
}

export const TEMPLATES: Template[] = [
  {
    name: 'CT head (stroke)',
    matches: (m, part) => m.includes('CT') && /HEAD|BRAIN/i.test(part),
    sections: {
      technique: 'Non-contrast axial CT of the head, with coronal and sagittal reformats.',
      findings:
        'Brain parenchyma: \nHaemorrhage: \nEarly ischaemic change (ASPECTS): \n' +
        'Ventricles and extra-axial spaces: \nDense vessel sign: \nSkull and scalp: ',
      impression: ''
    }
  },
  {
    name: 'MR brain',
    matches: (m, part) => m.includes('MR') && /HEAD|BRAIN/i.test(part),
    sections: {
      technique: 'Multiplanar multisequence MR of the brain.',
      findings: 'Parenchyma: \nDiffusion: \nVentricles: \nExtra-axial spaces: \nVessels (flow voids): '
    }
  },
  {
    name: 'MR knee',
    matches: (m, part) => m.includes('MR') && /KNEE/i.test(part),
    sections: {
      technique: 'Multiplanar MR of the knee.',
      findings: 'Menisci: \nCruciate ligaments: \nCollateral ligaments: \nCartilage: \nBone marrow: \nEffusion: '
    }
  },
  {
    name: 'CT chest',
    matches: (m, part) => m.includes('CT') && /CHEST|THORAX|LUNG/i.test(part),
    sections: {
      technique: 'Axial CT of the chest.',
      findings: 'Lungs: \nPleura: \nMediastinum and hila: \nHeart and great vessels: \nBones: '
    }
  },
  {
    name: 'General',
    matches: () => true,
    sections: { technique: '', findings: 'Findings: ' }
  }
]

export function templatesFor(modalities: string[], bodyPart: string): Template[] {
  return TEMPLATES.filter(t => t.matches(modalities, bodyPart))
}
