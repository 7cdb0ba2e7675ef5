"""PyTorch-GAN implementations/softmax_gan/softmax_gan.py on sklearn digits upsampled to 28x28, hidden widths halved.
Adaptation: the original computes g_loss's backward after optimizer_D.step() through a retained graph, which modern
PyTorch refuses (D's weights modified in place); G's gradient of g_loss is taken before D's step instead and
added to what d_loss.backward() left in G's .grad (as the original accumulates). README: softmax GAN's D is an
energy (lower for reals): Doctor(..., d_output="energy") unless --variant naive/naive_* (Quickstart only)."""
import math
import sys

import numpy as np
import torch
import torch.nn as nn
from _digits import Oracle, digits_loader, parse_args, summarise

import gandoctor

opt = parse_args(("healthy", "glr", "ddom", "naive"), default_steps=1500)
torch.manual_seed(opt.seed); np.random.seed(opt.seed)
lr_g = lr_d = 0.0002
b1, b2 = 0.5, 0.999
latent_dim, img_size, channels, batch_size, width = 100, 28, 1, 64, 64
if opt.variant == "glr":
    lr_g = 0.002
if opt.variant == "ddom":
    lr_d = 0.002
img_shape = (channels, img_size, img_size)

class Generator(nn.Module):
    def __init__(self):
        super(Generator, self).__init__()
        def block(in_feat, out_feat, normalize=True):
            layers = [nn.Linear(in_feat, out_feat)]
            if normalize:
                layers.append(nn.BatchNorm1d(out_feat, 0.8))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            return layers
        self.model = nn.Sequential(
            *block(latent_dim, width, normalize=False),
            *block(width, width * 2),
            *block(width * 2, width * 4),
            *block(width * 4, width * 8),
            nn.Linear(width * 8, int(np.prod(img_shape))),
            nn.Tanh()
        )
    def forward(self, z):
        img = self.model(z)
        return img.view(img.shape[0], *img_shape)

class Discriminator(nn.Module):
    def __init__(self):
        super(Discriminator, self).__init__()
        self.model = nn.Sequential(
            nn.Linear(img_size ** 2, width * 4),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Linear(width * 4, width * 2),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Linear(width * 2, 1),
        )
    def forward(self, img):
        return self.model(img.view(img.shape[0], -1))

adversarial_loss = torch.nn.BCELoss()
generator = Generator(); discriminator = Discriminator()
dataloader = digits_loader(img_size, batch_size, opt.seed)
optimizer_G = torch.optim.Adam(generator.parameters(), lr=lr_g, betas=(b1, b2))
optimizer_D = torch.optim.Adam(discriminator.parameters(), lr=lr_d, betas=(b1, b2))
Tensor = torch.FloatTensor
def log(x):
    return torch.log(x + 1e-8)

kw = {} if opt.variant == "naive" else {"d_output": "energy"}
doctor = gandoctor.Doctor(generator=generator, discriminator=discriminator,
                          g_optimizer=optimizer_G, d_optimizer=optimizer_D, log_dir=opt.out, **kw)
oracle = Oracle()
oracle_every = opt.oracle_every or max(1, opt.steps // 10)
n_epochs = math.ceil(opt.steps / len(dataloader))
def latent(n, gen):
    return torch.randn(n, latent_dim, generator=gen)

batches_done = 0; stop = False
for epoch in range(n_epochs):
    for i, (imgs, _) in enumerate(dataloader):
        optimizer_G.zero_grad()
        optimizer_D.zero_grad()
        batch_size = imgs.shape[0]
        g_target = 1 / (batch_size * 2)
        d_target = 1 / batch_size
        real_imgs = imgs.type(Tensor)
        z = Tensor(np.random.normal(0, 1, (imgs.shape[0], latent_dim)))
        gen_imgs = generator(z)
        d_real = discriminator(real_imgs)
        d_fake = discriminator(gen_imgs)
        Z = torch.sum(torch.exp(-d_real)) + torch.sum(torch.exp(-d_fake))
        d_loss = d_target * torch.sum(d_real) + log(Z)
        d_loss.backward(retain_graph=True)
        g_loss = g_target * (torch.sum(d_real) + torch.sum(d_fake)) + log(Z)
        g_grads = torch.autograd.grad(g_loss, list(generator.parameters()))  # adaptation (see docstring)
        optimizer_D.step()
        for p, g in zip(generator.parameters(), g_grads):
            p.grad = g if p.grad is None else p.grad + g
        optimizer_G.step()
        if i % 10 == 0:
            print("[Epoch %d/%d] [Batch %d/%d] [D loss: %f] [G loss: %f]" % (epoch, n_epochs, i, len(dataloader), d_loss.item(), g_loss.item()))
        doctor.step(d_loss=d_loss, g_loss=g_loss, real=real_imgs, fake=gen_imgs)
        batches_done = epoch * len(dataloader) + i
        if batches_done % oracle_every == 0 or batches_done == opt.steps - 1:
            oracle.sample(generator, latent, batches_done)
        if math.isnan(d_loss.item()) or math.isnan(g_loss.item()):
            print("NaN loss, stopping", file=sys.stderr); stop = True
        if stop or batches_done + 1 >= opt.steps:
            stop = True; break
    if stop:
        break
oracle.sample_last(generator, latent, batches_done)
report = doctor.report()
print(report)
print("disabled_probes:", doctor.disabled_probes)
doctor.close()
summarise(opt.out, opt.variant, oracle, report, batches_done, {"disabled_probes": str(doctor.disabled_probes)})
