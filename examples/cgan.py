"""eriklindernoren/PyTorch-GAN ``implementations/cgan/cgan.py``, CPU-sized, on sklearn's digits
upsampled to 28x28 instead of MNIST, with gandoctor attached as the README Quickstart says for a
conditional GAN (``labels=`` and ``fake_labels=`` passed to ``doctor.step``).

The model, losses (least squares: ``MSELoss``), optimizers and loop are the original's: G reads
a label embedding and z concatenated in its first layer (``nn.Embedding`` registered before it),
D reads the image and a label embedding. Hidden widths are halved to fit a shared CPU. Nothing
tells the doctor z's width: it finds it (the first layer's width less the embedding's). Variants:

- ``healthy``: the original hyper-parameters (Adam lr 2e-4, betas (0.5, 0.999), latent 100).
- ``collapse``: G's lr 10x D's, a 2-dimensional latent and no BatchNorm in G.
- ``ddom``: D's lr 10x (2e-3), G's as original.

    python examples/cgan.py --steps 1500 --out runs/cgan --variant collapse
"""

from __future__ import annotations

import math
import sys

import numpy as np
import torch
import torch.nn as nn
from _digits import Oracle, digits_loader, parse_args, summarise

import gandoctor

VARIANTS = ("healthy", "collapse", "ddom")
opt = parse_args(VARIANTS, default_steps=1500)
torch.manual_seed(opt.seed)
np.random.seed(opt.seed)

lr_g = lr_d = 0.0002
b1, b2 = 0.5, 0.999
latent_dim, n_classes, img_size, channels, batch_size, width = 100, 10, 28, 1, 64, 32
g_batchnorm = True
if opt.variant == "collapse":
    lr_g, latent_dim, g_batchnorm = 0.002, 2, False
elif opt.variant == "ddom":
    lr_d = 0.002

img_shape = (channels, img_size, img_size)
cuda = False


class Generator(nn.Module):
    def __init__(self):
        super(Generator, self).__init__()

        self.label_emb = nn.Embedding(n_classes, n_classes)

        def block(in_feat, out_feat, normalize=True):
            layers = [nn.Linear(in_feat, out_feat)]
            if normalize:
                layers.append(nn.BatchNorm1d(out_feat, 0.8))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            return layers

        self.model = nn.Sequential(
            *block(latent_dim + n_classes, width * 4, normalize=False),
            *block(width * 4, width * 8, normalize=g_batchnorm),
            *block(width * 8, width * 16, normalize=g_batchnorm),
            *block(width * 16, width * 32, normalize=g_batchnorm),
            nn.Linear(width * 32, int(np.prod(img_shape))),
            nn.Tanh()
        )

    def forward(self, noise, labels):
        # Concatenate label embedding and image to produce input
        gen_input = torch.cat((self.label_emb(labels), noise), -1)
        img = self.model(gen_input)
        img = img.view(img.size(0), *img_shape)
        return img


class Discriminator(nn.Module):
    def __init__(self):
        super(Discriminator, self).__init__()

        self.label_embedding = nn.Embedding(n_classes, n_classes)

        self.model = nn.Sequential(
            nn.Linear(n_classes + int(np.prod(img_shape)), width * 16),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Linear(width * 16, width * 16),
            nn.Dropout(0.4),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Linear(width * 16, width * 16),
            nn.Dropout(0.4),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Linear(width * 16, 1),
        )

    def forward(self, img, labels):
        # Concatenate label embedding and image to produce input
        d_in = torch.cat((img.view(img.size(0), -1), self.label_embedding(labels)), -1)
        validity = self.model(d_in)
        return validity


# Loss functions
adversarial_loss = torch.nn.MSELoss()

# Initialize generator and discriminator
generator = Generator()
discriminator = Discriminator()

dataloader = digits_loader(img_size, batch_size, opt.seed)

# Optimizers
optimizer_G = torch.optim.Adam(generator.parameters(), lr=lr_g, betas=(b1, b2))
optimizer_D = torch.optim.Adam(discriminator.parameters(), lr=lr_d, betas=(b1, b2))

FloatTensor = torch.cuda.FloatTensor if cuda else torch.FloatTensor
LongTensor = torch.cuda.LongTensor if cuda else torch.LongTensor

doctor = gandoctor.Doctor(generator=generator, discriminator=discriminator,
                          g_optimizer=optimizer_G, d_optimizer=optimizer_D,
                          log_dir=opt.out)

oracle = Oracle()
oracle_every = opt.oracle_every or max(1, opt.steps // 10)
n_epochs = math.ceil(opt.steps / len(dataloader))


def oracle_g(z: torch.Tensor) -> torch.Tensor:
    """G on the oracle's codes, every class in turn (a cGAN is judged on the labels it is given)."""
    return generator(z, torch.arange(z.shape[0]) % n_classes)


def latent(n: int, gen: torch.Generator) -> torch.Tensor:
    return torch.randn(n, latent_dim, generator=gen)


# ----------
#  Training
# ----------

batches_done = 0
stop = False
for epoch in range(n_epochs):
    for i, (imgs, labels) in enumerate(dataloader):

        batch_size = imgs.shape[0]

        # Adversarial ground truths
        valid = FloatTensor(batch_size, 1).fill_(1.0)
        fake = FloatTensor(batch_size, 1).fill_(0.0)

        # Configure input
        real_imgs = imgs.type(FloatTensor)
        labels = labels.type(LongTensor)

        # -----------------
        #  Train Generator
        # -----------------

        optimizer_G.zero_grad()

        # Sample noise and labels as generator input
        z = FloatTensor(np.random.normal(0, 1, (batch_size, latent_dim)))
        gen_labels = LongTensor(np.random.randint(0, n_classes, batch_size))

        # Generate a batch of images
        gen_imgs = generator(z, gen_labels)

        # Loss measures generator's ability to fool the discriminator
        validity = discriminator(gen_imgs, gen_labels)
        g_loss = adversarial_loss(validity, valid)

        g_loss.backward()
        optimizer_G.step()

        # ---------------------
        #  Train Discriminator
        # ---------------------

        optimizer_D.zero_grad()

        # Loss for real images
        validity_real = discriminator(real_imgs, labels)
        d_real_loss = adversarial_loss(validity_real, valid)

        # Loss for fake images
        validity_fake = discriminator(gen_imgs.detach(), gen_labels)
        d_fake_loss = adversarial_loss(validity_fake, fake)

        # Total discriminator loss
        d_loss = (d_real_loss + d_fake_loss) / 2

        d_loss.backward()
        optimizer_D.step()

        print(
            "[Epoch %d/%d] [Batch %d/%d] [D loss: %f] [G loss: %f]"
            % (epoch, n_epochs, i, len(dataloader), d_loss.item(), g_loss.item())
        )
        doctor.step(d_loss=d_loss, g_loss=g_loss, real=real_imgs, fake=gen_imgs,
                    labels=labels, fake_labels=gen_labels)   # once per iteration

        batches_done = epoch * len(dataloader) + i
        if batches_done % oracle_every == 0 or batches_done == opt.steps - 1:
            oracle.sample(oracle_g, latent, batches_done)
        if math.isnan(d_loss.item()) or math.isnan(g_loss.item()):
            print("NaN loss, stopping", file=sys.stderr)
            stop = True
        if stop or batches_done + 1 >= opt.steps:
            stop = True
            break
    if stop:
        break

oracle.sample_last(oracle_g, latent, batches_done)
report = doctor.report()      # also callable mid-training
print(report)                 # readable summary (rich)
doctor.close()
summarise(opt.out, opt.variant, oracle, report, batches_done)
